"""The conv2d_transpose oracle: a scatter-add over kernel taps, from the definition.

Definition (DESIGN.md §2), per group ``g`` and kernel tap ``(i, j)``::

    full[n, g·Cog + o, a·s + i·d, b·s + j·d] += x[n, g·Cig + c, a, b] · w[g·Cig + c, o, i, j]

then ``out = full[pt : pt + H_out, pl : pl + W_out]`` (rows past the full
output are zeros) ``+ bias``. The products of every tap come from one matrix
product over the group's input channels (a block of images, or of one large
image's rows, at a time, so they stay small), then each tap's products are
added at their place: the scatter-add of the definition at BLAS speed. The
only indexing trick, phase-major columns (and, in NumPy, rows), is explained
where it is used.
With stride 1 (b3 of benchmarks/) the same sum is read the other way round,
output pixel by output pixel (``_by_row_products``): the input columns each
kernel column brings to an output row are gathered, one matrix product
takes them through every kernel row, and each kernel row's sums are added
to whole output rows, as in the conv2d oracle; no canvas, no crop. A single
image splits its output channels between threads.

The padding arithmetic below is deliberately re-derived from the case
parameters instead of calling ``harness.ops.conv2d_transpose.resolve``.

Note [Compiled oracle loops]
----------------------------
A grouped call with very few channels per group (Cig·Cog ≤ 16, e.g. a
depthwise layer) gives matrix products too small for BLAS: NumPy spends its
time on call overhead and on the products' round trip through memory. In
float64 such calls take ``_scatter_loops`` instead (measured per core on
32×32 images, stride 2: 3.5 against 12 ms for 64 groups of 1, 6.8 against
7.3 ms for 16 groups of 4; BLAS wins from 8 groups of 8, b4 of
benchmarks/: 8.5 against 11.6 ms): the definition's
scatter-add written as plain loops (image, output channel, input channel,
input row, tap, input column), compiled by Numba. It is this module's own
code, not the ``numba`` backend's kernels (``harness/kernels``,
``numba_kernel.py``: register tiles, packed weights, its own shape code),
and it only adds the terms of the definition one by one, so it stays as
easy to check as the NumPy path; ``tests/test_oracle_loops.py`` checks both
paths against plain Python loops and against each other. Dense calls keep
BLAS for the products, and in float64 ``_place_rows`` adds each tap's
products at its place and crops in one pass, an output row at a time (plain
loops again, the row staying in L1; b4 of benchmarks/, per core: 4.2 against
6.0 ms for an add pass, each output plane in cache, then a crop pass, and
those were 3× faster than a NumPy pass per tap). Threads: Note [Oracle
threads] (``harness/kernels/oracle_threads.py``), each on its own output
planes, images or (a single image) output channels. Without Numba (a
reproducer run elsewhere) NumPy does everything, in the same blocks.
"""

from __future__ import annotations

import numpy as np

from harness.kernels.oracle_threads import blas_threads, compiled, free_cores, on_threads

BLOCK_BYTES = 1 << 20           # products per block: large enough for BLAS, small enough to stay in L2 for the adds
ROW_PRODUCT_TERMS = 16          # stride 1 with at least Cig·kw terms per kernel row: ``_by_row_products``
LOOP_CHANNELS = 16              # groups > 1 with Cig·Cog up to this: the compiled loops (Note [Compiled oracle loops])


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def crops_and_size(size, k, s, d, padding, op, out, keras=False):
    """(crop_before, H_out) for one axis, straight from DESIGN.md §2 (``keras``: Keras' size for 'same'/'valid'
    with output_padding, ``deconv_output_length``; the crops stay TensorFlow's)."""
    full = (size - 1) * s + d * (k - 1) + 1
    if keras and padding == "valid":
        out = full + op
    elif keras and padding == "same":
        out = (size - 1) * s + (d * (k - 1) + 1) % 2 + op
    if padding == "valid":
        return 0, full if out is None else out
    if padding in ("same", "same_lower"):       # the odd crop at the end; same_lower: at the start
        out = size * s if out is None else out
        needed = max(0, full - out)
        return (needed - needed // 2 if padding == "same_lower" else needed // 2), out
    before, after = padding
    return before, full - before - after + op if out is None else out


def reference(params: dict, arrays: dict, dtype=np.float64, threads: int = 1) -> np.ndarray:
    """Compute conv2d_transpose in ``dtype`` (float64 for the oracle).

    ``params`` are the case's fields (as in the case file); ``arrays`` hold the
    canonical NCHW ``x``, ``w`` of shape (C_in, C_out/groups, kh, kw) and an
    optional ``b``. Returns the output in the case's layout. ``threads``: how
    many threads it may use, where cores are free (Note [Oracle threads]).
    """
    x = np.asarray(arrays["x"], dtype=dtype)
    w = np.asarray(arrays["w"], dtype=dtype)
    wanted, threads = threads, free_cores(threads)
    n, c_in, h, wd = x.shape
    _, cog, kh, kw = w.shape
    groups = params.get("groups", 1)
    cig = c_in // groups
    (sh, sw), (dh, dw) = _two(params.get("stride", 1)), _two(params.get("dilation", 1))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    pad_h = padding if isinstance(padding, str) else padding[0:2]
    pad_w = padding if isinstance(padding, str) else padding[2:4]
    oph, opw = _two(params.get("output_padding", 0))
    out_h, out_w = params.get("output_shape") or (None, None)
    keras = params.get("size_rule") == "keras"
    top, out_h = crops_and_size(h, kh, sh, dh, pad_h, oph, out_h, keras)
    left, out_w = crops_and_size(wd, kw, sw, dw, pad_w, opw, out_w, keras)

    full_h = max((h - 1) * sh + dh * (kh - 1) + 1, top + out_h)
    full_w = max((wd - 1) * sw + dw * (kw - 1) + 1, left + out_w)
    if (sh, sw) == (1, 1) and cig * kw >= ROW_PRODUCT_TERMS and np.isfinite(w).all():
        out = np.empty((n, groups, cog, out_h, out_w), dtype=dtype)
        with blas_threads(1 if threads > 1 or wanted > threads or groups > 1 else None):
            # w as (g, kh, cog, cig, kw), once for all threads.
            wr = np.ascontiguousarray(w.reshape(groups, cig, cog, kh, kw).transpose(0, 3, 2, 1, 4))
            _on_parts(_by_row_products, n, cog, threads, np.ascontiguousarray(x).reshape(n, groups, cig, h, wd),
                      wr, (dh, dw, top, left), out)
        return _finish(out.reshape(n, groups * cog, out_h, out_w), params, arrays, dtype)
    loops = compiled(_scatter_loops) if np.dtype(dtype) == np.float64 else None
    if loops is not None and groups > 1 and cig * cog <= LOOP_CHANNELS:
        out = np.empty((n, groups * cog, out_h, out_w))
        on_threads(loops, n * groups * cog, threads, np.ascontiguousarray(x), np.ascontiguousarray(w), groups,
                    sh, sw, dh, dw, full_h, full_w, top, left, out)
        return _finish(out, params, arrays, dtype)
    # Image-major, as the case's arrays are: x as (n, g, cig, h, w), w as (g, cig, cog·kh·kw). A group's
    # products of a block of input rows are one matrix product, (cog·kh·kw, cig) @ (images, cig, pixels): each
    # input pixel through every tap; the weights' matrix is w's transposed, which BLAS reads as it is.
    xg = np.ascontiguousarray(x).reshape(n, groups, cig, h, wd)
    wg = w.reshape(groups, cig, cog * kh * kw)
    out = np.empty((n, groups, cog, out_h, out_w), dtype=dtype)
    # Threads on images, or on output channels for fewer images than threads, BLAS on one: a product per block
    # is too small to share, and its threads would wait a time slice at every product when no second core is
    # free.
    with blas_threads(1 if threads > 1 or wanted > threads else None):
        _on_parts(_scatter_products, n, cog, threads, xg, wg, (kh, kw, sh, sw, dh, dw, top, left, full_h, full_w),
                  out)
    return _finish(out.reshape(n, groups * cog, out_h, out_w), params, arrays, dtype)


def _by_row_products(xg, wg, kernel, out, a0, a1, o0, o1):
    """Stride 1, images [a0, a1) and output channels [o0, o1) of each group. Output pixel (y, x) is full pixel
    (top + y, left + x), which tap (i, j) reaches from input pixel (top + y − i·dh, left + x − j·dw): for a block
    of input rows, the input columns each kernel column takes to the output are gathered (zero where none), one
    matrix product, (g, kh·cog, cig·kw) @ (g, cig·kw, pixels), sums them over channels and kernel columns for
    every kernel row at once, and each kernel row's sums are added to the output rows it reaches: whole rows,
    one contiguous run per kernel row and channel. Finite weights only (a gathered zero times an infinite
    weight would be NaN where the definition has no term)."""
    _, groups, cig, h, wd = xg.shape
    _, kh, _, _, kw = wg.shape                                            # wg: (g, kh, cog, cig, kw)
    _, _, _, out_h, out_w = out.shape
    dh, dw, top, left = kernel
    co = o1 - o0
    weights = wg[:, :, o0:o1].reshape(groups, kh * co, cig * kw)
    # Kernel row i: output rows [y0, y1) from input rows first + (y − y0); kernel column j: output columns
    # [x0, x1) from input columns start + (x − x0).
    rows, columns = [], np.zeros((kw, 3), np.int64)          # columns: (x0, x1, start); x0 = x1: none
    for i in range(kh):
        y0, y1 = max(0, i * dh - top), min(out_h, h + i * dh - top)
        if y1 > y0:
            rows.append((i, y0, y1, y0 + top - i * dh))
    for j in range(kw):
        x0, x1 = max(0, j * dw - left), min(out_w, wd + j * dw - left)
        if x1 > x0:
            columns[j] = x0, x1, x0 + left - j * dw
    rows = np.array(rows, np.int64).reshape(-1, 4)
    float64 = out.dtype == np.float64
    gather = (compiled(_gather_columns) if float64 else None) or _gather_columns_numpy
    add = (compiled(_add_rows) if float64 else None) or _add_rows_numpy
    out[a0:a1, :, o0:o1] = 0
    blocks = _blocks(a0, a1, h, groups * (cig * kw + kh * co) * out_w * out.itemsize)
    # The temporaries of the largest block, allocated once: a fresh megabyte each block costs its page faults.
    largest = max(((b - a) * (r1 - r0) for a, b, r0, r1 in blocks), default=0) * groups * out_w
    terms_memory, sums_memory = np.empty(largest * cig * kw, out.dtype), np.empty(largest * kh * co, out.dtype)
    for a, b, r0, r1 in blocks:
        pixels = (r1 - r0) * out_w
        terms = terms_memory[:(b - a) * groups * cig * kw * pixels].reshape(b - a, groups, cig, kw, r1 - r0, out_w)
        gather(xg, terms, columns, a, r0)
        sums = sums_memory[:(b - a) * groups * kh * co * pixels].reshape(b - a, groups, kh * co, pixels)
        np.matmul(weights, terms.reshape(b - a, groups, cig * kw, pixels), out=sums)
        add(sums.reshape(b - a, groups, kh, co, r1 - r0, out_w), out, rows, a, o0, r0)


def _gather_columns(xg, terms, columns, a0, r0):
    """``terms[m, g, c, j, r, x] = x[a0 + m, g, c, r0 + r, start + x − x0]`` for x in [x0, x1), 0 for the other
    x, with kernel column j's (x0, x1, start) = ``columns[j]``."""
    images, groups, cig, kw, rows, out_w = terms.shape
    for m in range(images):
        for g in range(groups):
            for c in range(cig):
                for j in range(kw):
                    x0, x1, start = columns[j, 0], columns[j, 1], columns[j, 2]
                    for r in range(rows):
                        target, source = terms[m, g, c, j, r], xg[a0 + m, g, c, r0 + r]
                        for x in range(x0):
                            target[x] = 0.0
                        inside, run = target[x0:x1], source[start:start + x1 - x0]
                        for x in range(x1 - x0):
                            inside[x] = run[x]
                        for x in range(max(x0, x1), out_w):
                            target[x] = 0.0


def _gather_columns_numpy(xg, terms, columns, a0, r0):
    """``_gather_columns`` in NumPy."""
    images, _, _, _, rows, _ = terms.shape
    terms[:] = 0
    for j, (x0, x1, start) in enumerate(columns.tolist()):
        terms[:, :, :, j, :, x0:x1] = xg[a0:a0 + images, :, :, r0:r0 + rows, start:start + x1 - x0]


def _add_rows(sums, out, rows, a0, o0, r0):
    """``out[a0 + m, g, o0 + o, y] += sums[m, g, i, o, first + y − y0 − r0]`` for each kernel row (i, y0, y1,
    first) of ``rows`` and each output row y in [y0, y1) whose input row ``first + y − y0`` is one of the
    block's, [r0, r0 + block rows)."""
    images, groups, _, co, block_rows, out_w = sums.shape
    for m in range(images):
        for g in range(groups):
            for o in range(co):
                for t in range(rows.shape[0]):
                    i, y0, y1, first = rows[t, 0], rows[t, 1], rows[t, 2], rows[t, 3]
                    for y in range(max(y0, y0 + r0 - first), min(y1, y0 + r0 + block_rows - first)):
                        target = out[a0 + m, g, o0 + o, y]
                        source = sums[m, g, i, o, first + y - y0 - r0]
                        for x in range(out_w):
                            target[x] += source[x]


def _add_rows_numpy(sums, out, rows, a0, o0, r0):
    """``_add_rows`` in NumPy."""
    images, _, _, co, block_rows, _ = sums.shape
    for i, y0, y1, first in rows.tolist():
        lo, hi = max(y0, y0 + r0 - first), min(y1, y0 + r0 + block_rows - first)
        if hi > lo:
            out[a0:a0 + images, :, o0:o0 + co, lo:hi] += sums[:, :, i, :, first + lo - y0 - r0:first + hi - y0 - r0]


def _scatter_products(xg, wg, geometry, out, a0, a1, o0, o1):
    """Images [a0, a1), output channels [o0, o1) of each group, of the scatter-add: a block's products, then
    each tap's added at its place, by ``_place_rows`` or, in NumPy, on the canvas of the block's images, which
    is cropped into ``out`` once their last input row is in."""
    _, groups, cig, h, wd = xg.shape
    kh, kw, sh, sw, dh, dw, top, left, full_h, full_w = geometry
    co = o1 - o0
    place = compiled(_place_rows) if out.dtype == np.float64 else None
    blocks = _blocks(a0, a1, h, kh * kw * co * wd * out.itemsize)
    # NumPy's canvas, (images, cog, row phase, column phase, rows, columns), stores rows and columns
    # phase-major: full row Y = q·s + p lives at [.., p, .., q, ..]. Tap (i, j) writes rows a·s + i·d, i.e. phase
    # (i·d) % s and rows (i·d) // s + a: one dense block per tap instead of a strided scatter. Same sums, about
    # twice as fast. One canvas for the images of a block, allocated once (a fresh one each block costs its page
    # faults) and cropped while it is still in cache.
    rows, columns = -(-full_h // sh), -(-full_w // sw)
    plane = 0 if place is not None else co * sh * sw * rows * columns
    memory = np.empty(max((b - a for a, b, _, _ in blocks), default=0) * plane, dtype=out.dtype)
    largest = max(((b - a) * (r1 - r0) for a, b, r0, r1 in blocks), default=0) * kh * kw * co * wd
    products_memory = np.empty(largest, dtype=out.dtype)
    for g in range(groups):     # a group at a time: its products (and canvas) stay in cache (b4 of benchmarks/: 7%)
        weights = wg[g, :, o0 * kh * kw:o1 * kh * kw].T
        for a, b, r0, r1 in blocks:
            pixels = (r1 - r0) * wd
            products = products_memory[:(b - a) * kh * kw * co * pixels].reshape(b - a, co * kh * kw, pixels)
            np.matmul(weights, xg[a:b, g, :, r0:r1].reshape(b - a, cig, pixels), out=products)
            products = products.reshape(b - a, co, kh, kw, r1 - r0, wd)
            if place is not None:           # all of ``out``, contiguous: a slice's rows would not vectorise
                place(products, out, a, g, o0, r0, top, left, sh, sw, dh, dw, h, columns)
                continue
            canvas = memory[:(b - a) * plane].reshape(b - a, co, sh, sw, rows, columns)
            if r0 == 0:
                canvas[...] = 0
            for i in range(kh):
                for j in range(kw):
                    (qi, pi), (qj, pj) = divmod(i * dh, sh), divmod(j * dw, sw)
                    canvas[:, :, pi, pj, qi + r0:qi + r1, qj:qj + wd] += products[:, :, i, j]
            if r1 == h:
                _crop(canvas, out[a:b, g, o0:o1], top, left)


def _crop(canvas, out, top, left):
    """``out = full[top : top + H_out, left : left + W_out]``, read from the phase-major canvas phase by phase:
    output row y is full row top + y, at phase (top + y) % sh."""
    _, _, sh, sw, _, _ = canvas.shape
    _, _, out_h, out_w = out.shape
    for p in range(sh):
        y0 = (p - top) % sh                                    # the first output row at phase p
        for q in range(sw):
            x0 = (q - left) % sw
            rows, cols = len(range(y0, out_h, sh)), len(range(x0, out_w, sw))
            r0, c0 = (top + y0) // sh, (left + x0) // sw
            out[:, :, y0::sh, x0::sw] = canvas[:, :, p, q, r0:r0 + rows, c0:c0 + cols]


def _place_rows(products, out, a0, g, o0, r0, top, left, sh, sw, dh, dw, h, width):
    """``_scatter_products``' adds and crop in one pass: each output row ``out[a0 + m, g, o0 + o, y]`` that
    input rows [r0, r0 + block rows) reach, summed in a phase-major row (full column b·sw + p at [p, b]: each
    tap's products added with unit stride, as on the canvas) that stays in L1, then stored in output order.
    A row that earlier input rows reach too (a block of an image's rows) gets this block's sums added; a row
    no input row reaches is zero, written by an image's first block."""
    images, co, kh, kw, rows, wd = products.shape
    _, _, _, out_h, out_w = out.shape
    # Full row top + y = a·sh + i·dh: kernel row i brings input row a = reach[y, i] (-1: none in [0, h)), a
    # row of the block's or not; the rows to write (``write``: 0 none, 1 store, 2 add to earlier rows' sums).
    reach, write = np.full((out_h, kh), -1), np.zeros(out_h, np.int64)
    for y in range(out_h):
        here = before = reached = False
        for i in range(kh):
            a, rest = divmod(top + y - i * dh, sh)
            if rest == 0 and 0 <= a < h:
                reached, before = True, before or a < r0
                if r0 <= a < r0 + rows:
                    reach[y, i], here = a - r0, True
        write[y] = (2 if before else 1) if here else (1 if not reached and r0 == 0 else 0)
    # Unsigned indices and no slices in the loops over rows: Numba wraps a signed index (negative: from the
    # end), which keeps LLVM from vectorising ``line[p, q + b]``, and each slice costs an atomic reference count
    # (b4 of benchmarks/: 15% faster than slices of ``line`` and ``out`` per row).
    u = np.uint64
    phase, position = np.empty(kw, u), np.empty(kw, u)
    for j in range(kw):
        phase[j], position[j] = (j * dw) % sw, (j * dw) // sw
    ep, eq, op, oq = u(left % sw), u(left // sw), u((left + 1) % sw), u((left + 1) // sw)
    line = np.empty((sw, width))
    for m in range(images):
        for o in range(co):
            terms, target = products[m, o], out[a0 + m, g, o0 + o]
            for y in range(out_h):
                if write[y] == 0:
                    continue
                line[:] = 0.0
                for i in range(kh):
                    r = reach[y, i]
                    if r >= 0:
                        for j in range(kw):
                            p, q = phase[j], position[j]
                            for b in range(u(wd)):
                                line[p, q + b] += terms[i, j, r, b]
                if sw == 2 and write[y] == 1:   # the usual stride: pairs, which LLVM vectorises (b4: 9% faster)
                    for k in range(u(out_w // 2)):
                        target[y, u(2) * k] = line[ep, eq + k]
                        target[y, u(2) * k + u(1)] = line[op, oq + k]
                    if out_w % 2:
                        target[y, out_w - 1] = line[ep, eq + u(out_w // 2)]
                    continue
                for x in range(min(sw, out_w)):     # output columns x, x + sw, ..: phase (left + x) % sw
                    p, q = u((left + x) % sw), u((left + x) // sw)
                    for k in range(u((out_w - x + sw - 1) // sw)):
                        column = u(x) + u(sw) * k
                        value = line[p, q + k]
                        target[y, column] = value + target[y, column] if write[y] == 2 else value


def _finish(out, params, arrays, dtype):
    """``out + bias`` (``out`` is the oracle's own array), in the case's layout."""
    if arrays.get("b") is not None:
        out += np.asarray(arrays["b"], dtype=dtype)[:, None, None]
    if params.get("layout", "NCHW") == "NHWC":
        out = out.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(out)


def _blocks(a0, a1, rows, row_bytes):
    """(a, b, r0, r1): images [a, b) of [a0, a1), input rows [r0, r1) of each, with about ``BLOCK_BYTES`` of
    products (``row_bytes`` an input row's): whole images while one fits, else the rows of one image a block
    at a time."""
    per_block = max(1, BLOCK_BYTES // max(row_bytes, 1))
    if per_block >= rows:
        step = per_block // max(rows, 1)
        return [(a, min(a1, a + step), 0, rows) for a in range(a0, a1, step)]
    per_block = -(-rows // -(-rows // per_block))                 # as many rows in each block of an image
    return [(a, a + 1, r, min(rows, r + per_block)) for a in range(a0, a1) for r in range(0, rows, per_block)]


def _on_parts(form, images, channels, threads, *args):
    """``form(*args, a0, a1, o0, o1)`` on images [a0, a1) and output channels [o0, o1) of each group: a range of
    images per thread, or of channels (all images) when there are fewer images than threads, so that a single
    image uses every free core too. Each part writes only its own output."""
    if images >= threads or channels < 2:
        on_threads(lambda *a: form(*a, 0, channels), images, threads, *args)
    else:
        on_threads(lambda *a: form(*a[:-2], 0, images, *a[-2:]), channels, threads, *args)


def _scatter_loops(x, w, groups, sh, sw, dh, dw, full_h, full_w, top, left, out, lo, hi):
    """Output planes (image, output channel) ``lo`` to ``hi``: term by term::

        full[n, g·Cog + o, a·sh + i·dh, b·sw + j·dw] += x[n, g·Cig + c, a, b] · w[g·Cig + c, o, i, j]

    then ``out = full[top : top + H_out, left : left + W_out]``."""
    _, c_in, h, wd = x.shape
    _, cog, kh, kw = w.shape
    _, _, out_h, out_w = out.shape
    cig = c_in // groups
    # One plane of ``full`` at a time, columns phase-major (full column q·sw + p at [.., p, q]): tap column j
    # writes columns b·sw + j·dw, phase (j·dw) % sw, positions (j·dw) // sw + b, consecutive for consecutive b.
    plane = np.empty((full_h, sw, -(-full_w // sw)))
    phase, position = np.empty(kw, np.int64), np.empty(kw, np.int64)
    for j in range(kw):
        phase[j], position[j] = (j * dw) % sw, (j * dw) // sw
    crop_phase, crop_position = np.empty(out_w, np.int64), np.empty(out_w, np.int64)
    for q in range(out_w):
        crop_phase[q], crop_position[q] = (left + q) % sw, (left + q) // sw
    for task in range(lo, hi):
        m, oc = task // (groups * cog), task % (groups * cog)
        g, o = oc // cog, oc % cog
        plane[:] = 0.0
        for c in range(g * cig, (g + 1) * cig):
            for a in range(h):
                source = x[m, c, a]
                for i in range(kh):
                    row = plane[a * sh + i * dh]
                    for j in range(kw):
                        weight, target = w[c, o, i, j], row[phase[j], position[j]:position[j] + wd]
                        for b in range(wd):
                            target[b] += source[b] * weight
        for y in range(out_h):
            for q in range(out_w):
                out[m, oc, y, q] = plane[top + y, crop_phase[q], crop_position[q]]


def warm() -> None:
    """Compile (or load from Numba's on-disk cache) the compiled loops: a tiny grouped call, a tiny dense one with
    stride 2 and one with stride 1."""
    if compiled(_scatter_loops) is not None:
        reference({"groups": 2, "stride": 2}, {"x": np.ones((1, 2, 2, 2)), "w": np.ones((2, 1, 2, 2))})
        reference({"stride": 2}, {"x": np.ones((1, 2, 2, 2)), "w": np.ones((2, 2, 2, 2))})
        reference({"padding": 1}, {"x": np.ones((1, 8, 2, 2)), "w": np.ones((8, 1, 2, 2))})
