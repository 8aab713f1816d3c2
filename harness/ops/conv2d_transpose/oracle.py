"""The conv2d_transpose oracle: a scatter-add over kernel taps, from the definition.

Definition (DESIGN.md §2), per group ``g`` and kernel tap ``(i, j)``::

    full[n, g·Cog + o, a·s + i·d, b·s + j·d] += x[n, g·Cig + c, a, b] · w[g·Cig + c, o, i, j]

then ``out = full[pt : pt + H_out, pl : pl + W_out]`` (rows past the full
output are zeros) ``+ bias``. The products of every tap come from one matrix
product over the group's input channels (a block of images, or of one large
image's rows, at a time, so they stay small), then each tap's products are
added at their place: the scatter-add of the definition at BLAS speed. The
only indexing trick, the phase-major canvas, is explained where it is used.

The padding arithmetic below is deliberately re-derived from the case
parameters instead of calling ``harness.ops.conv2d_transpose.resolve``.

Note [Compiled oracle loops]
----------------------------
A grouped call with few channels per group (b4 of benchmarks/: 8 groups of
8) gives matrix products too small for BLAS: NumPy spends its time on call
overhead and on the products' round trip through memory, 10-15× PyTorch.
In float64 such calls take ``_scatter_loops`` instead: the definition's
scatter-add written as plain loops (image, output channel, input channel,
input row, tap, input column), compiled by Numba. It is this module's own
code, not the ``numba`` backend's kernels (``harness/kernels``,
``numba_kernel.py``: register tiles, packed weights, its own shape code),
and it only adds the terms of the definition one by one, so it stays as
easy to check as the NumPy path; ``tests/test_oracle_loops.py`` checks both
paths against plain Python loops and against each other. Dense calls keep
BLAS for the products, and in float64 ``_add_products`` adds each tap's
products at its place in one pass (plain loops again, each output plane
staying in cache: 3× faster than a NumPy pass per tap). Threads: one in
the parent, where the oracle runs beside the framework workers (``threads``
defaults to 1); in the ``numpy`` backend, which passes the worker's cores,
as many as are free of other processes (``_free_cores``). Each thread runs
the compiled loop (no GIL) on its own output planes, or the BLAS path on its
own images with BLAS on one thread, so no Numba thread pool is ever started
and no two pools compete. Without Numba (a reproducer run elsewhere) NumPy
does everything, in the same blocks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK_BYTES = 4 << 20           # products per block: large enough for BLAS, small enough to stay in cache for the adds
LOOP_CHANNELS = 256             # groups > 1 with Cig·Cog up to this: the compiled loops (Note [Compiled oracle loops])


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
    many threads it may use, where cores are free (Note [Compiled oracle loops]).
    """
    x = np.asarray(arrays["x"], dtype=dtype)
    w = np.asarray(arrays["w"], dtype=dtype)
    wanted, threads = threads, _free_cores(threads)
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
    loops = compiled(_scatter_loops) if np.dtype(dtype) == np.float64 else None
    if loops is not None and groups > 1 and cig * cog <= LOOP_CHANNELS:
        out = np.empty((n, groups * cog, out_h, out_w))
        _on_threads(loops, n * groups * cog, threads, np.ascontiguousarray(x), np.ascontiguousarray(w), groups,
                    sh, sw, dh, dw, full_h, full_w, top, left, out)
        return _finish(out, params, arrays, dtype)
    # Channel-major, so each tap's products are whole image rows: x as (g, cig, n, h, w), w as
    # (g, kh·kw·cog, cig). Every product of a block of input rows is one matrix product,
    # (g, kh·kw·cog, cig) @ (g, cig, pixels): each input pixel through every tap.
    xc = np.ascontiguousarray(x.reshape(n, groups, cig, h, wd).transpose(1, 2, 0, 3, 4))
    wc = np.ascontiguousarray(w.reshape(groups, cig, cog, kh, kw).transpose(0, 3, 4, 2, 1)).reshape(groups, -1, cig)
    # The canvas, (n, g, cog, row phase, column phase, rows, columns), stores rows and columns phase-major:
    # full row Y = q·s + p lives at [.., p, .., q, ..]. Tap (i, j) writes rows a·s + i·d, i.e. phase (i·d) % s
    # and rows (i·d) // s + a: one dense block per tap instead of a strided scatter. Same sums, about twice
    # as fast.
    canvas = np.zeros((n, groups, cog, sh, sw, -(-full_h // sh), -(-full_w // sw)), dtype=dtype)
    # Images on threads (each its own canvas part), BLAS on one: a product per block is too small to share;
    # and BLAS on one when no second core is free (its threads would wait a time slice at every product).
    with _one_blas_thread() if (threads > 1 and n > 1) or wanted > threads else contextlib.nullcontext():
        _on_threads(_scatter_products, n, threads, xc, wc, (kh, kw, sh, sw, dh, dw), canvas)
    # The crop, read phase by phase: output row y is full row top + y, at phase (top + y) % sh.
    out = np.empty((n, groups, cog, out_h, out_w), dtype=dtype)
    for p in range(sh):
        y0 = (p - top) % sh                                    # the first output row at phase p
        for q in range(sw):
            x0 = (q - left) % sw
            rows, cols = len(range(y0, out_h, sh)), len(range(x0, out_w, sw))
            r0, c0 = (top + y0) // sh, (left + x0) // sw
            out[:, :, :, y0::sh, x0::sw] = canvas[:, :, :, p, q, r0:r0 + rows, c0:c0 + cols]
    return _finish(out.reshape(n, groups * cog, out_h, out_w), params, arrays, dtype)


def _scatter_products(xc, wc, kernel, canvas, a0, a1):
    """Images [a0, a1) of the scatter-add: a block's products, then each tap's added at its place."""
    groups, cig, _, h, wd = xc.shape
    kh, kw, sh, sw, dh, dw = kernel
    cog = canvas.shape[2]
    for a, b, r0, r1 in _blocks(a0, a1, h, groups * kh * kw * cog * wd * canvas.itemsize):
        pixels = xc[:, :, a:b, r0:r1].reshape(groups, cig, -1)
        products = np.matmul(wc, pixels).reshape(groups, kh, kw, cog, b - a, r1 - r0, wd)
        adds = compiled(_add_products) if canvas.dtype == np.float64 else None
        if adds is not None:                # the same adds in one pass, each output plane in cache: 3× faster
            adds(products, canvas, a, r0, sh, sw, dh, dw)
            continue
        for i in range(kh):
            for j in range(kw):
                (qi, pi), (qj, pj) = divmod(i * dh, sh), divmod(j * dw, sw)
                tap = products[:, i, j].transpose(2, 0, 1, 3, 4)                # (images, g, cog, rows, wd)
                canvas[a:b, :, :, pi, pj, qi + r0:qi + r1, qj:qj + wd] += tap


def _add_products(products, canvas, a0, r0, sh, sw, dh, dw):
    """Each tap's products at its place: ``canvas[a0 + m, g, o, ..]`` at full row (r0 + a)·sh + i·dh and
    column b·sw + j·dw (phase-major, as in ``reference``) ``+= products[g, i, j, o, m, a, b]``."""
    groups, kh, kw, cog, images, rows, wd = products.shape
    for m in range(images):
        for g in range(groups):
            for o in range(cog):
                for a in range(rows):
                    for i in range(kh):
                        qi, pi = (i * dh) // sh, (i * dh) % sh
                        for j in range(kw):
                            qj, pj = (j * dw) // sw, (j * dw) % sw
                            target = canvas[a0 + m, g, o, pi, pj, qi + r0 + a, qj:qj + wd]
                            source = products[g, i, j, o, m, a]
                            for b in range(wd):
                                target[b] += source[b]


def _finish(out, params, arrays, dtype):
    """``out + bias``, in the case's layout."""
    if arrays.get("b") is not None:
        out = out + np.asarray(arrays["b"], dtype=dtype)[:, None, None]
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


def _free_cores(threads):
    """``threads``, fewer when other processes keep the cores busy (runnable tasks in ``/proc/loadavg``, Linux):
    a thread that waits for a core holds the whole call up for a time slice (as ``harness/kernels/threads.py``
    finds for the numba backend)."""
    if threads <= 1:
        return 1
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])             # runnable tasks, this thread included
    except (OSError, IndexError, ValueError):
        return threads
    return max(1, min(threads, (os.cpu_count() or threads) - running + 1))


def _on_threads(loops, tasks, threads, *args):
    """``loops(*args, lo, hi)`` over tasks [0, ``tasks``), split into contiguous ranges, one per thread."""
    if threads <= 1 or tasks < 2:
        loops(*args, 0, tasks)
        return
    bounds = [tasks * k // threads for k in range(threads + 1)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: loops(*args, bounds[k], bounds[k + 1]), range(threads)))


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


@functools.cache
def _blas_threads():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _one_blas_thread():
    """Within: BLAS computes on one thread (without threadpoolctl: as BLAS is set)."""
    controller = _blas_threads()
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


@functools.cache
def compiled(loops):
    """``loops`` compiled by Numba, once (imported here, on first use: it takes a tenth of a second to import);
    None without Numba."""
    try:
        from numba import njit
    except ImportError:
        return None
    # Numba's cache names the module and imports it to load an entry: one loaded from its file under another
    # name (a script) would write entries no later process can load (ModuleNotFoundError: '<dynamic>').
    return njit(cache=sys.modules.get(loops.__module__) is not None, nogil=True)(loops)


def warm() -> None:
    """Compile (or load from Numba's on-disk cache) the compiled loops: a tiny grouped call, a tiny dense one."""
    if compiled(_scatter_loops) is not None:
        reference({"groups": 2, "stride": 2}, {"x": np.ones((1, 2, 2, 2)), "w": np.ones((2, 1, 2, 2))})
        reference({"stride": 2}, {"x": np.ones((1, 2, 2, 2)), "w": np.ones((2, 2, 2, 2))})
