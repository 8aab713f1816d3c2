"""The conv2d oracle: a sum over kernel taps of in-bounds products, from the definition.

Definition (Note [conv2d semantics] in ``semantics``), per group ``g`` and tap ``(i, j)``::

    out[n, g·Cog + o, y, x] += x[n, g·Cig + c, y·sh + i·dh − top, x·sw + j·dw − left] · w[g·Cog + o, c, i, j]

for every output pixel whose input pixel lies inside the image (padding
contributes no term), then ``+ bias``. Three transcriptions of that sum, a
block of images (or of one large image's rows) at a time so that
temporaries stay small:

* ``_by_terms`` adds the terms one by one, vectorised over images, output
  channels and pixels: for each tap and input channel, ``x_tap · w`` on the
  output pixels that tap reaches. Used for a depthwise group (one input
  channel: few terms per output, no matrix product would pay) and for weights
  that are not all finite (``0 · inf`` would turn an absent term into NaN).
* ``_by_matrix_product`` gathers the terms into one matrix per group, a column
  per output pixel and a row per (input channel, tap), with zeros where the
  tap falls outside the image (with finite weights, an absent term and a zero
  term give the same sum), and sums them with one matrix product at BLAS
  speed.
* ``_by_row_products`` (row stride 1: b1 and b3 of benchmarks/) gathers
  the terms of the kernel columns only, for a block of *input* rows, and one
  matrix product per group takes them through every kernel row at once:
  for each kernel row, output channel and input row, the sum over input
  channels and kernel columns. Each kernel row's sums are then added to the
  output rows that read that input row through it (whole rows: one
  contiguous addition). Against ``_by_matrix_product`` its gathered matrix
  is ``kh`` times smaller, the input rows are gathered once instead of once
  per kernel row, and the product has ``kh·Cog`` rows instead of ``Cog``
  (BLAS runs at 60 instead of 35 GFLOP/s a core on b3's 16 output
  channels).

Every form works on the case's NCHW arrays as they are (image-major, no
copy of the input or the output), on images or, for a single image, on
output rows split between threads (``_on_parts``); a single image of one
group whose products BLAS computes is one part, and BLAS's own threads share
each product.

Deliberately independent: the padding arithmetic (TensorFlow's SAME/VALID
rule, DESIGN.md §8) is re-derived here from the case parameters and nothing
is imported from the semantics or the adapters.

Note [Compiled conv2d oracle loops]
-----------------------------------
A depthwise call (one input channel per group; b5 of benchmarks/) has 9
terms per output for a 3×3 kernel: ``_by_terms`` makes 9 full passes over
the input in float64, memory bound at ~30× PyTorch. In float64 such calls
take ``_sum_loops``: the definition's sum written as plain loops (image,
output channel, output row, input channel, tap, output column), compiled by
Numba, adding only the terms whose input pixel is inside the image. It is
this module's own code, not the ``numba`` backend's kernels
(``harness/kernels``, ``numba_*.py``: register tiles, packed inputs and
weights, their own shape code), so it stays as easy to check as the NumPy
paths; ``tests/test_oracle_loops.py`` checks every path against plain Python
loops and against each other. ``_by_row_products`` keeps BLAS for the
products; in float64 its gather (``_gather_columns``) and its additions
(``_add_rows``) are plain loops too, a block's temporaries staying in L2
(NumPy's strided copies and additions took as long as the product).
Threads: Note [Oracle threads] (``harness/kernels/oracle_threads.py``), each
on its own output planes, images or (a single image) output rows. Without
Numba (a reproducer run elsewhere) NumPy computes every call.

Note [Column phases]
--------------------
With column stride ``sw``, the columns a tap reads step by ``sw``: copying
every other element was the larger part of ``_by_matrix_product`` on b2 and
b4 of benchmarks/ (stride 2). ``column_phases`` first splits x's columns by
their remainder modulo ``sw`` (``phases[..., y, p, q] = x[..., y, q·sw + p]``);
a tap's columns ``x·sw + j·dw − left`` are then side by side in phase
``(j·dw − left) mod sw`` from column ``(j·dw − left) div sw``, and every
gather is a plain copy. The split reads x in its own dtype (float32 or
float64: exact in float64), so it replaces the conversion to float64 rather
than adding a pass. b4 on one thread: the gather 0.71 → 0.44 ms.

Note [Zeros first]
------------------
The gathers zero whole planes of terms and then copy the terms that lie
inside the image. Zeroing each row's few padding elements on their own was
slower than all the copies: LLVM makes each such loop a ``memset`` call (b3
of benchmarks/, 164,000 rows a call: the gather 5.5 → 2.8 ms on one thread).
``_gather_taps`` zeroes only the planes of taps that reach some padding (b4
of benchmarks/: 5 taps of 9; its gather 0.062 → 0.053 ms an image).
"""

from __future__ import annotations

import numpy as np

from harness.kernels.oracle_threads import blas_threads, compiled, free_cores, on_threads

# Temporaries per block: large enough for BLAS and few blocks (each has Python around its products and gathers,
# which two threads take turns at under the GIL), small enough to stay near L2. 2 MiB against 1, two threads,
# calls interleaved: conv2d b1 of benchmarks/ 4.70 against 5.47 ms, b3 14.9 against 15.8, b4 1.07 against 1.17.
BLOCK_BYTES = 2 << 20
ROW_PRODUCT_TERMS = 16          # row stride 1 with at least Cig·kw terms per kernel row: ``_by_row_products``


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def pads_and_size(size, k, s, d, padding):
    """(pad_before, H_out) for one axis: ``padding`` is 'same', 'same_lower', 'valid' or (before, after)."""
    eff = d * (k - 1) + 1
    if padding in ("same", "same_lower"):       # TensorFlow: out = ceil(H/s), odd total to the end;
        out = -(-size // s)                       # same_lower (ONNX SAME_LOWER): to the start
        total = max((out - 1) * s + eff - size, 0)
        return (total - total // 2 if padding == "same_lower" else total // 2), out
    before, after = (0, 0) if padding == "valid" else padding
    return before, (size + before + after - eff) // s + 1


def _reach(size, out, s, d, before, tap):
    """Output indices [lo, hi) whose input index ``o·s + tap·d − before`` is inside [0, size), and that
    input index at lo."""
    offset = tap * d - before
    lo = max(0, -(-(-offset) // s))                             # first o with o·s + offset ≥ 0
    hi = min(out, (size - 1 - offset) // s + 1)                  # last o with o·s + offset < size, plus 1
    return lo, hi, lo * s + offset


def _within(lo, hi, first, s, r0, r1):
    """The part [lo', hi') of a tap's output rows [lo, hi) inside a block's rows [r0, r1), and its input rows."""
    lo_, hi_ = max(lo, r0), min(hi, r1)
    start = first + (lo_ - lo) * s
    return lo_ - r0, hi_ - r0, slice(start, start + (hi_ - lo_ - 1) * s + 1, s)


def reference(params: dict, arrays: dict, dtype=np.float64, threads: int = 1) -> np.ndarray:
    """Compute conv2d in ``dtype`` (float64 for the oracle).

    ``params`` are the case's fields (as in the case file); ``arrays`` hold the
    canonical NCHW ``x``, ``w`` of shape (C_out, C_in/groups, kh, kw) and an
    optional ``b``. Returns the output in the case's layout. ``threads``: how
    many threads it may use, where cores are free (Note [Oracle threads]).
    """
    x = np.asarray(arrays["x"])                 # converted to ``dtype`` as each form copies it
    w = np.asarray(arrays["w"], dtype=dtype)
    threads = free_cores(threads)
    n, c_in, h, wd = x.shape
    c_out, cig, kh, kw = w.shape
    groups = params.get("groups", 1)
    cog = c_out // groups
    (sh, sw), (dh, dw) = _two(params.get("stride", 1)), _two(params.get("dilation", 1))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    top, out_h = pads_and_size(h, kh, sh, dh, padding if isinstance(padding, str) else padding[0:2])
    left, out_w = pads_and_size(wd, kw, sw, dw, padding if isinstance(padding, str) else padding[2:4])
    loops = compiled(_sum_loops) if np.dtype(dtype) == np.float64 else None
    if loops is not None and cig == 1:
        out = np.zeros((n, c_out, out_h, out_w))
        on_threads(loops, n * c_out, threads, np.ascontiguousarray(x, dtype), np.ascontiguousarray(w), groups,
                    sh, sw, dh, dw, top, left, out)
        return _finish(out, params, arrays, dtype)
    taps = []                     # (i, j, its output rows [y0, y1), the input row at y0, output and input columns)
    for i in range(kh):
        y0, y1, first = _reach(h, out_h, sh, dh, top, i)
        for j in range(kw):
            x0, x1, cols = _within(*_reach(wd, out_w, sw, dw, left, j), sw, 0, out_w)
            if y1 > y0 and x1 > x0:                                   # the tap reaches some pixel
                taps.append((i, j, y0, y1, first, x0, x1, cols))

    # Image-major, as the case's arrays are (no copy out): x as (n, g, cig, H, W), w as (g, cog, cig, kh, kw),
    # the output as (n, g, cog, H_out, W_out).
    wg = w.reshape(groups, cog, cig, kh, kw)
    out = np.empty((n, groups, cog, out_h, out_w), dtype=dtype)
    finite = np.isfinite(w).all()
    if sh == 1 and cig * kw >= ROW_PRODUCT_TERMS and finite:
        form = _by_row_products
        wg = np.ascontiguousarray(wg.transpose(0, 3, 1, 2, 4))        # (g, kh, cog, cig, kw), once for all threads
    elif cig == 1 or not finite:
        form = _by_terms
    else:
        form = _by_matrix_product
    if form is _by_matrix_product:      # x as it is: each part converts its own images (Note [Column phases])
        xg = x.reshape(n, groups, cig, h, wd)
    else:
        xg = np.ascontiguousarray(x, dtype).reshape(n, groups, cig, h, wd)
    # Threads on images, or on output rows for fewer images than threads, BLAS on one: its threads would
    # meet at every group's product, and under load wait a time slice each time (b4 of benchmarks/, one product
    # per group: 3 ms on one thread, 13-170 ms on two). One image of one group is one product per block, which
    # BLAS shares between its threads better than we do by rows (each of ours packs all the weights): b2 of
    # benchmarks/ 0.48-0.6 against 0.64-0.87 ms, a 16-channel 16×16 image 0.13 against 0.2-0.3.
    single = n == 1 and groups == 1 and form is not _by_terms and out.dtype in _BLAS_DTYPES
    with blas_threads(threads if single else 1):
        _on_parts(form, n, cog, out_h, 1 if single else threads, xg, wg, taps, sh, out)
    return _finish(out.reshape(n, c_out, out_h, out_w), params, arrays, dtype)


def _finish(out, params, arrays, dtype):
    """``out + bias`` (``out`` is the oracle's own array), in the case's layout."""
    if arrays.get("b") is not None:
        out += np.asarray(arrays["b"], dtype=dtype)[:, None, None]
    if params.get("layout", "NCHW") == "NHWC":
        out = out.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(out)


def _blocks(a0, a1, lo, hi, row_bytes):
    """(a, b, r0, r1): images [a, b) of [a0, a1), rows [r0, r1) of [lo, hi) of each (output rows; input rows
    for ``_by_row_products``), with about ``BLOCK_BYTES`` of temporaries (``row_bytes`` a row's): whole images
    (all of [lo, hi)) while one fits, else the rows of one image a block at a time."""
    rows = hi - lo
    per_block = max(1, BLOCK_BYTES // max(row_bytes, 1))
    if per_block >= rows:
        step = per_block // max(rows, 1)
        return [(a, min(a1, a + step), lo, hi) for a in range(a0, a1, step)]
    per_block = -(-rows // -(-rows // per_block))                 # as many rows in each block of an image
    return [(a, a + 1, r, min(hi, r + per_block)) for a in range(a0, a1) for r in range(lo, hi, per_block)]


def _by_terms(xg, wg, taps, sh, out, a0, a1, o0, o1, y_lo, y_hi):
    """``out[n, g, o, y, x] = Σ over taps (i, j) and channels c of x_tap[n, g, c, y, x] · w[g, o, c, i, j]``
    for images [a0, a1), output channels [o0, o1) of each group and output rows [y_lo, y_hi), each term added
    on the pixels its tap reaches (``taps``: (i, j, y0, y1, first row, x0, x1, columns))."""
    _, groups, _, out_h, out_w = out.shape
    for a, b, r0, r1 in _blocks(a0, a1, y_lo, y_hi, groups * (o1 - o0) * out_w * out.itemsize):
        block = out[a:b, :, o0:o1, r0:r1]
        block[...] = 0
        product = np.empty_like(block)
        for i, j, y0, y1, first, x0, x1, cols in taps:
            y0, y1, rows = _within(y0, y1, first, sh, r0, r1)
            if y1 <= y0:
                continue
            for c in range(xg.shape[2]):
                term = product[:, :, :, y0:y1, x0:x1]
                np.multiply(xg[a:b, :, c, None, rows, cols], wg[:, o0:o1, c, i, j, None, None], out=term)
                block[:, :, :, y0:y1, x0:x1] += term


def column_phases(x, sw, dtype):
    """``phases[..., y, p, q] = x[..., y, q·sw + p]``, in ``dtype``: x's columns split by their remainder modulo
    the column stride, 0 past the image's last column (never read). The columns that a tap reads at stride
    ``sw`` lie side by side in one phase, so gathering them is a plain copy (Note [Column phases])."""
    *outer, wd = x.shape
    if sw == 1:                                 # one phase: x itself
        return np.asarray(x, dtype).reshape(*outer, 1, wd)
    count = -(-wd // sw)
    phases = np.empty((*outer, sw, count), dtype)
    rows, split = x.reshape(-1, wd), phases.reshape(-1, sw, count)
    loops = compiled(_split_columns) if phases.dtype == np.float64 and x.dtype in _WIDENED else None
    if loops is not None:
        loops(np.ascontiguousarray(rows), split)
        return phases
    for p in range(sw):
        inside = len(range(p, wd, sw))
        split[:, p, :inside] = rows[:, p::sw]
        split[:, p, inside:] = 0
    return phases


_WIDENED = (np.dtype(np.float32), np.dtype(np.float64))     # read by the compiled loops as they are: exact in float64
_BLAS_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # NumPy's matmul hands these to BLAS (float16: its own)


def _split_columns(rows, phases):
    """``phases[r, p, q] = rows[r, q·sw + p]``, 0 past the row's end."""
    count, sw, q = phases.shape
    wd = rows.shape[1]
    for r in range(count):
        source = rows[r]
        # Both phases of stride 2 in one loop: vectorised as loads and shuffles, 3× faster than a phase at a time.
        # (A third branch here, a plain copy for stride 1, left LLVM vectorising neither: 6× slower; stride 1
        # needs no split.)
        if sw == 2 and wd % 2 == 0:
            even, odd = phases[r, 0], phases[r, 1]
            for k in range(wd // 2):
                even[k] = source[2 * k]
                odd[k] = source[2 * k + 1]
        else:
            for p in range(sw):
                target, inside = phases[r, p], (wd - p + sw - 1) // sw
                for k in range(inside):
                    target[k] = source[k * sw + p]
                for k in range(inside, q):
                    target[k] = 0.0


def _by_matrix_product(xg, wg, taps, sh, out, a0, a1, o0, o1, y_lo, y_hi):
    """The same sum as ``_by_terms``: (g, cog, cig·kh·kw) @ (g, cig·kh·kw, pixels) on the gathered terms, read
    from the column phases of images [a0, a1) (``column_phases``; ``xg`` in x's own dtype)."""
    _, groups, cig, _, _ = xg.shape
    sw = taps[0][7].step if taps else 1
    phases = column_phases(xg[a0:a1], sw, out.dtype)          # (images, g, cig, H, sw, ⌈W/sw⌉)
    _, _, _, kh, kw = wg.shape
    _, _, _, out_h, out_w = out.shape
    weights = wg[:, o0:o1].reshape(groups, o1 - o0, cig * kh * kw)
    plan = np.zeros((kh, kw, 7), np.int64)      # (y0, y1, first, x0, x1, phase, column); y0 = y1: reaches nothing
    for i, j, y0, y1, first, x0, x1, cols in taps:
        plan[i, j] = y0, y1, first, x0, x1, cols.start % sw, cols.start // sw
    gather = (compiled(_gather_taps) if out.dtype == np.float64 else None) or _gather_taps_numpy
    blocks = _blocks(a0, a1, y_lo, y_hi, groups * cig * kh * kw * out_w * out.itemsize)
    # The temporaries of the largest block, allocated once (as in ``_by_row_products``).
    largest = max(((b - a) * (r1 - r0) for a, b, r0, r1 in blocks), default=0) * groups * out_w
    terms_memory, sums_memory = np.empty(largest * cig * kh * kw, out.dtype), np.empty(largest * (o1 - o0), out.dtype)
    for a, b, r0, r1 in blocks:
        pixels = (b - a) * (r1 - r0) * out_w
        # (g, cig, kh, kw, images, rows, W_out): zero where the tap lies in the padding.
        terms = terms_memory[:groups * cig * kh * kw * pixels].reshape(groups, cig, kh, kw, b - a, r1 - r0, out_w)
        gather(phases, terms, plan, a - a0, r0, sh)
        if b - a == 1:      # one image: its (channel, pixels) rows are BLAS's output matrix as they are
            target = out[a, :, o0:o1, r0:r1].view()
            target.shape = (groups, o1 - o0, pixels)        # a view of ``out`` (whole rows), never a copy
            np.matmul(weights, terms.reshape(groups, cig * kh * kw, pixels), out=target)
            continue
        sums = sums_memory[:groups * (o1 - o0) * pixels].reshape(groups, o1 - o0, pixels)
        np.matmul(weights, terms.reshape(groups, cig * kh * kw, pixels), out=sums)
        out[a:b, :, o0:o1, r0:r1] = sums.reshape(groups, o1 - o0, b - a, r1 - r0, out_w).transpose(2, 0, 1, 3, 4)


def _gather_taps(xg, terms, plan, a0, r0, sh):
    """``terms[g, c, i, j, m, r, x] = phases[a0 + m, g, c, first + (r0 + r − y0)·sh, p, q + x − x0]`` for output
    rows r0 + r in [y0, y1) and columns x in [x0, x1), 0 elsewhere (the padding), with tap (i, j)'s
    (y0, y1, first, x0, x1, p, q) = ``plan[i, j]`` and ``xg`` x's column phases."""
    groups, cig, kh, kw, images, rows, out_w = terms.shape
    for i in range(kh):
        for j in range(kw):
            y0, y1, first, x0, x1, p, q = plan[i, j, 0], plan[i, j, 1], plan[i, j, 2], \
                plan[i, j, 3], plan[i, j, 4], plan[i, j, 5], plan[i, j, 6]
            lo, hi = max(y0 - r0, 0), min(y1 - r0, rows)
            padded = lo > 0 or hi < rows or x0 > 0 or x1 < out_w      # some of the tap's block is padding
            for g in range(groups):
                for c in range(cig):
                    for m in range(images):
                        target, planes = terms[g, c, i, j, m], xg[a0 + m, g, c]
                        if padded:          # the padding's zeros, then the terms inside (Note [Zeros first])
                            target[:] = 0.0
                        for r in range(lo, hi):
                            source = planes[first + (r0 + r - y0) * sh, p]
                            inside, run = target[r, x0:x1], source[q:q + x1 - x0]   # slices: vectorised
                            for x in range(x1 - x0):
                                inside[x] = run[x]


def _gather_taps_numpy(xg, terms, plan, a0, r0, sh):
    """``_gather_taps`` in NumPy."""
    _, _, kh, kw, images, rows, _ = terms.shape
    terms[:] = 0
    for i in range(kh):
        for j in range(kw):
            y0, y1, first, x0, x1, p, q = plan[i, j].tolist()
            y0, y1, source_rows = _within(y0, y1, first, sh, r0, r0 + rows)
            if y1 > y0 and x1 > x0:
                terms[:, :, i, j, :, y0:y1, x0:x1] = \
                    xg[a0:a0 + images, :, :, source_rows, p, q:q + x1 - x0].transpose(1, 2, 0, 3, 4)


def _by_row_products(xg, wg, taps, sh, out, a0, a1, o0, o1, y_lo, y_hi):
    """The same sum as ``_by_terms`` with row stride 1, for a block of input rows at a time: the terms of
    each kernel column gathered as in ``_by_matrix_product`` (zero where the column lies in the padding), then
    one matrix product, (g, kh·cog, cig·kw) @ (g, cig·kw, pixels), sums them over channels and kernel columns
    for every kernel row at once, and each kernel row's sums are added to the output rows that read the input
    row through it: whole rows, one contiguous run per kernel row and channel."""
    _, groups, cig, h, wd = xg.shape
    _, kh, _, _, kw = wg.shape                                            # wg: (g, kh, cog, cig, kw)
    _, _, _, out_h, out_w = out.shape
    co = o1 - o0
    weights = wg[:, :, o0:o1].reshape(groups, kh * co, cig * kw)
    # Kernel row i: output rows [y0, y1) read input rows first + (y − y0). Kernel column j: output columns
    # [x0, x1) read input columns start + (x − x0)·sw.
    rows = np.array(sorted({(i, y0, y1, first) for i, _, y0, y1, first, *_ in taps}), np.int64).reshape(-1, 4)
    columns = np.zeros((kw, 4), np.int64)                   # (x0, x1, start, step); x0 = x1: reads no column
    for _, j, _, _, _, x0, x1, cols in taps:
        columns[j] = x0, x1, cols.start, cols.step or 1
    float64 = out.dtype == np.float64
    gather = (compiled(_gather_columns) if float64 else None) or _gather_columns_numpy
    add = (compiled(_add_rows) if float64 else None) or _add_rows_numpy
    out[a0:a1, :, o0:o1, y_lo:y_hi] = 0
    # The input rows that output rows [y_lo, y_hi) read through some kernel row.
    reads = [(first + max(y0, y_lo) - y0, first + min(y1, y_hi) - y0) for _, y0, y1, first in rows.tolist()]
    lo, hi = min((r for r, end in reads if end > r), default=0), max((end for r, end in reads if end > r), default=0)
    blocks = _blocks(a0, a1, lo, hi, groups * (cig * kw + kh * co) * out_w * out.itemsize)
    # The temporaries of the largest block, allocated once: a fresh megabyte each block costs its page faults.
    largest = max(((b - a) * (r1 - r0) for a, b, r0, r1 in blocks), default=0) * groups * out_w
    terms_memory, sums_memory = np.empty(largest * cig * kw, out.dtype), np.empty(largest * kh * co, out.dtype)
    for a, b, r0, r1 in blocks:
        pixels = (r1 - r0) * out_w
        terms = terms_memory[:(b - a) * groups * cig * kw * pixels].reshape(b - a, groups, cig, kw, r1 - r0, out_w)
        gather(xg, terms, columns, a, r0)
        sums = sums_memory[:(b - a) * groups * kh * co * pixels].reshape(b - a, groups, kh * co, pixels)
        np.matmul(weights, terms.reshape(b - a, groups, cig * kw, pixels), out=sums)
        add(sums.reshape(b - a, groups, kh, co, r1 - r0, out_w), out, rows, a, o0, r0, y_lo, y_hi)


def _gather_columns(xg, terms, columns, a0, r0):
    """``terms[m, g, c, j, r, x] = x[a0 + m, g, c, r0 + r, start + (x − x0)·step]`` for x in [x0, x1), 0 for the
    other x (the padding), with kernel column j's (x0, x1, start, step) = ``columns[j]``."""
    images, groups, cig, kw, rows, out_w = terms.shape
    terms.fill(0.0)         # the padding's zeros, then the terms inside the image (Note [Zeros first])
    for m in range(images):
        for g in range(groups):
            for c in range(cig):
                for j in range(kw):
                    x0, x1, start, step = columns[j, 0], columns[j, 1], columns[j, 2], columns[j, 3]
                    for r in range(rows):
                        target, source = terms[m, g, c, j, r], xg[a0 + m, g, c, r0 + r]
                        if step == 1:                   # the same copy on a contiguous slice: vectorised
                            inside, run = target[x0:x1], source[start:start + x1 - x0]
                            for x in range(x1 - x0):
                                inside[x] = run[x]
                        else:
                            for x in range(x0, x1):
                                target[x] = source[start + (x - x0) * step]


def _gather_columns_numpy(xg, terms, columns, a0, r0):
    """``_gather_columns`` in NumPy."""
    images, _, _, _, rows, _ = terms.shape
    terms[:] = 0
    for j, (x0, x1, start, step) in enumerate(columns.tolist()):
        last = start + (x1 - x0 - 1) * step
        if x1 > x0:
            terms[:, :, :, j, :, x0:x1] = xg[a0:a0 + images, :, :, r0:r0 + rows, start:last + 1:step]


def _add_rows(sums, out, rows, a0, o0, r0, y_lo, y_hi):
    """``out[a0 + m, g, o0 + o, y] += sums[m, g, i, o, first + y − y0 − r0]`` for each kernel row (i, y0, y1,
    first) of ``rows`` and each output row y in [y0, y1) ∩ [y_lo, y_hi) whose input row ``first + y − y0`` is
    one of the block's, [r0, r0 + block rows)."""
    images, groups, _, co, block_rows, out_w = sums.shape
    for m in range(images):
        for g in range(groups):
            for o in range(co):
                for t in range(rows.shape[0]):
                    i, y0, y1, first = rows[t, 0], rows[t, 1], rows[t, 2], rows[t, 3]
                    for y in range(max(y0, y0 + r0 - first, y_lo), min(y1, y0 + r0 + block_rows - first, y_hi)):
                        target = out[a0 + m, g, o0 + o, y]
                        source = sums[m, g, i, o, first + y - y0 - r0]
                        for x in range(out_w):
                            target[x] += source[x]


def _add_rows_numpy(sums, out, rows, a0, o0, r0, y_lo, y_hi):
    """``_add_rows`` in NumPy."""
    images, _, _, co, block_rows, _ = sums.shape
    for i, y0, y1, first in rows.tolist():
        lo, hi = max(y0, y0 + r0 - first, y_lo), min(y1, y0 + r0 + block_rows - first, y_hi)
        if hi > lo:
            out[a0:a0 + images, :, o0:o0 + co, lo:hi] += sums[:, :, i, :, first + lo - y0 - r0:first + hi - y0 - r0]


def _on_parts(form, images, channels, rows, threads, *args):
    """``form(*args, a0, a1, o0, o1, y0, y1)`` on images [a0, a1), output channels [o0, o1) of each group and
    output rows [y0, y1): a range of images per thread, or of output rows (every image) when there are fewer
    images than threads, so that a single image uses every free core too (with ``threads`` 1, one part: a single
    image of one group leaves its products to BLAS's threads, in ``reference``). Rows, not channels: each thread
    gathers the terms of its own rows only (split by channels, each would gather every term: b2 of
    benchmarks/, 128 channels against 64 pixels, took 0.42 ms a thread against 0.34 by rows). Each part writes
    only its own output."""
    if images >= threads or rows < 2:
        on_threads(lambda *a: form(*a, 0, channels, 0, rows), images, threads, *args)
    else:
        on_threads(lambda *a: form(*a[:-2], 0, images, 0, channels, *a[-2:]), rows, threads, *args)


def _sum_loops(x, w, groups, sh, sw, dh, dw, top, left, out, lo, hi):
    """Output planes (image, output channel) ``lo`` to ``hi``, term by term::

        out[n, g·Cog + o, y, q] += x[n, g·Cig + c, y·sh + i·dh − top, q·sw + j·dw − left] · w[g·Cog + o, c, i, j]

    for the terms whose input pixel is inside the image."""
    _, _, h, wd = x.shape
    c_out, cig, kh, kw = w.shape
    _, _, out_h, out_w = out.shape
    cog = c_out // groups
    # Tap column j: output column q reads input column q·sw + shift[j], inside the image for q in [first, end).
    shift, first, end = np.empty(kw, np.int64), np.empty(kw, np.int64), np.empty(kw, np.int64)
    for j in range(kw):
        shift[j] = j * dw - left
        first[j] = max(0, -(shift[j] // sw))                     # the first q with q·sw + shift ≥ 0
        end[j] = max(first[j], min(out_w, (wd - 1 - shift[j]) // sw + 1))   # past the last with q·sw + shift < wd
    for task in range(lo, hi):
        m, oc = task // c_out, task % c_out
        channels = x[m, oc // cog * cig:(oc // cog + 1) * cig]            # the input channels of its group
        for y in range(out_h):
            target = out[m, oc, y]
            for c in range(cig):
                for i in range(kh):
                    row = y * sh + i * dh - top
                    if row < 0 or row >= h:
                        continue
                    source = channels[c, row]
                    for j in range(kw):
                        weight, into = w[oc, c, i, j], target[first[j]:end[j]]
                        if sw == 1:                     # the same loop on a contiguous slice: vectorised, 6× faster
                            terms = source[first[j] + shift[j]:end[j] + shift[j]]
                            for q in range(end[j] - first[j]):
                                into[q] += terms[q] * weight
                        else:
                            strided = source[first[j] * sw + shift[j]:end[j] * sw + shift[j]:sw]
                            for q in range(end[j] - first[j]):
                                into[q] += strided[q] * weight


def warm() -> None:
    """Compile (or load from Numba's on-disk cache) the compiled loops: a tiny depthwise call, a tiny dense one
    gathering kernel columns and adding rows, tiny strided ones gathering every tap from a float32 and a float64
    x (the column phases read either as it is)."""
    if compiled(_sum_loops) is not None:
        reference({"groups": 2, "padding": 1}, {"x": np.ones((1, 2, 2, 2)), "w": np.ones((2, 1, 2, 2))})
        reference({"padding": 1}, {"x": np.ones((1, 8, 2, 2)), "w": np.ones((1, 8, 2, 2))})
        for dtype in _WIDENED:
            reference({"stride": 2, "padding": 1}, {"x": np.ones((1, 2, 3, 3), dtype), "w": np.ones((1, 2, 2, 2))})
