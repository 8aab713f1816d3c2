"""The ``numba`` conv2d kernel's path for small output images with a long ``K``: im2col blocks.

Called by ``harness.ops.conv2d.numba_kernel`` for narrow output rows (``W_out
≤ 16``) whose weight panel per channel vector exceeds half of L1. The output is
a ``(C_out, H_out·W_out)`` matrix product per image and group::

    out[n, g·Cog + o, m] = b + Σ_k W[g·Cog + o, k] · X[k, m],   k = (ci·kh + i)·kw + j

``W`` is ``w`` itself, reshaped: the tiles (``gemm_tiles.gemm_sweep``, ``R``
channels × ``NB`` pixel vectors) read ``R`` of its rows in place, so nothing
is repacked per call, and the pixels ``m = y·W_out + x`` are consecutive
across rows (no dropped row ends: b2's 8×8 output is exactly 4 vectors). The
path it replaced ran the channel tiles over the flattened ``(y, x)`` positions,
each row padded to ``W_out + taps' reach`` (b2: 72 positions), and repacked all
295 K weights of conv2d b2 each call (0.13 of 0.59 ms on one thread).

- **Blocks.** A task is one ``(n, g)``, a block of ``NB`` pixel vectors and a
  range of output channels: it lays out its block of ``X`` (``K`` rows of
  ``NB·L`` pixels, zeros for padding and past the image) in the thread's
  buffer, unless the thread's previous task had the same block, then sweeps its
  channels. ``NB`` is 4, or 2 or 1 for a block past 2 MB (``K`` over 8192 in
  float32: a 1024-channel 3×3 layer on one thread, 7.3 → 5.1 ms). With fewer
  blocks than threads, the threads share a block's channels when a block has
  no more pixels than there are channels (each thread then reads its share of
  the weights once, and lays the block out itself), smaller blocks otherwise
  (each thread reads all the weights once): conv2d b2 of benchmarks/, whose
  128 channels by 64 pixels are one block, 0.265 → 0.24 ms on two threads (the
  weights and input converted afresh before each call, as the backend does;
  medians of 200 interleaved calls). The channels are split too while there
  are fewer than two tasks per thread. The threads claim tasks one at a time
  (``harness.kernels.tasks``), numbered channel chunk first: with as many
  blocks as threads each thread keeps its block for all its chunks, and a
  thread that starts late leaves its later chunks to the others (which then
  lay its block out again). Laying out a shared block once, in pieces claimed
  by both threads, or splitting ``K`` between them (each its own half of the
  block, partial sums added at the end) measured no faster on two threads
  (b2 0.320-0.324 ms against 0.321-0.323, medians of 200 interleaved calls):
  the other core's half costs the sweeps what the layout saves.
- **Stores.** NCHW: a tile row is ``L`` consecutive outputs of one channel
  plane. NHWC: scattered by channel.

Non-finite weights: the zeros of ``X`` meet every weight (``0 · inf`` is NaN
where the definition has no term). Then every output of that channel is
non-finite, so the caller checks the (small) output, and only if it holds an
inf or NaN the weights, and falls back to the exact loop. The output check is
their sum less the bias, which ``gemm`` adds up as it stores them and returns
(``out.sum()`` after the call cost 3-20 µs more).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.gemm_tiles import copy_rows, gemm_block, gemm_sweep
from harness.kernels.packing import pack_row
from harness.kernels.tasks import claim

__all__ = ["gemm", "gemm_buffer_size", "gemm_layout"]


_BLOCK_BYTES = 2 << 20   # an X block at most a 2 MB L2 (every channel tile sweeps it again)


def gemm_layout(nbatch, groups, cog, hout, wout, lanes, threads, k, itemsize):
    """``(NB, channel chunks per block, tasks)`` for ``threads`` threads and ``K = k`` (see the module's
    Blocks): ``NB`` also as small as keeps an X block in ``_BLOCK_BYTES``, if one vector can, or gives
    each thread a block when a block has more pixels than the group has channels; channel chunks so that
    there are two tasks per thread (a late thread's share goes to the other)."""
    nv = -(-(hout * wout) // lanes)
    nb = 4
    while nb > 1 and k * nb * lanes * itemsize > _BLOCK_BYTES:
        nb //= 2
    while nb > 1 and nbatch * groups * -(-nv // nb) < threads and nb * lanes > cog:
        nb //= 2
    blocks = nbatch * groups * -(-nv // nb)
    # two tasks a thread, where channels allow (no blocks: an empty batch, whose plan is made before the
    # caller returns the empty output)
    chunks = max(1, min(-(-2 * threads // max(blocks, 1)), -(-cog // 4)))
    return nb, chunks, blocks * chunks


@njit(cache=True)
def _seg(wd, wout, kw, sw, dw, left):
    """Positions of one phase of a packed input row: every tap's reads, every input column."""
    return max(wout + ((kw - 1) * dw) // sw, (left + wd - 1) // sw + 1)


@njit(cache=True)
def gemm_buffer_size(cig, h, wd, hout, wout, kh, kw, sh, sw, dh, dw, left, xs):
    """Elements of a thread's buffers: the ``X`` block (``K`` rows of ``xs``) and two of the packed
    rows of one input channel (every padded row the block may read)."""
    hp = (hout - 1) * sh + (kh - 1) * dh + 1
    return cig * kh * kw * xs + 2 * hp * sw * _seg(wd, wout, kw, sw, dw, left)


@njit(cache=True)
def _im2col(x, n, g, cig, kh, kw, sh, sw, dh, dw, top, left, wout, m0, pe, buf, xs, rows, lanes):
    """``buf[k·xs + p]`` = ``X[k, m0 + p]`` of image ``n``, group ``g`` for ``p < pe``; 0 up to ``xs``.

    Per input channel, the rows the block reads are packed (``pack_row``: phase-packed for the
    stride) into one half of ``rows``, zero where padding; ``copy_rows`` then copies ``X``'s pieces,
    an output row each, from them. Every offset is
    worked out before the channel loop (an integer division per piece cost more than the copy).
    """
    h, wd = x.shape[2], x.shape[3]
    seg = _seg(wd, wout, kw, sw, dw, left)
    rs = sw * seg                                       # one packed row
    half = rows.shape[0] // 2
    rows[:] = 0                     # padding stays 0; a block's rows start at its first row's (stale otherwise)
    y_lo = m0 // wout
    y_hi = (m0 + pe - 1) // wout
    a_lo = max(0, y_lo * sh - top)
    a_hi = min(h - 1, y_hi * sh + (kh - 1) * dh - top)
    toff = np.empty(kh * kw, dtype=np.int64)            # tap -> its first read in a packed channel
    for i in range(kh):
        for j in range(kw):
            toff[i * kw + j] = i * dh * rs + ((j * dw) % sw) * seg + (j * dw) // sw
    # The block's pieces: a partial first row, whole rows, a partial last row, each cut into copies of
    # at most L columns: (offset in the block, offset in the packed rows, rows, columns) per copy.
    ops = np.zeros(4 * 6, dtype=np.int64)
    nops = 0
    p = 0
    y = y_lo
    xo = m0 - y_lo * wout
    while p < pe:
        cnt = min(wout - xo, pe - p)
        nr = 1 if cnt < wout else (pe - p) // wout
        for c in range(0, cnt, lanes):
            ops[4 * nops] = p + c
            ops[4 * nops + 1] = (y - y_lo) * sh * rs + xo + c
            ops[4 * nops + 2] = nr
            ops[4 * nops + 3] = min(lanes, cnt - c)
            nops += 1
        p += nr * cnt
        y += nr
        xo = 0
    for ci in range(-1, cig):
        # channel ci + 1 is packed before channel ci is copied (the copies then read no store in flight)
        if ci + 1 < cig:
            for a in range(a_lo, a_hi + 1):
                pack_row(x[n, g * cig + ci + 1, a], rows, ((ci + 1) % 2) * half + (a + top - y_lo * sh) * rs, left,
                         sw, seg)
        if ci < 0:
            continue
        base = (ci % 2) * half
        for t in range(kh * kw):
            d = (ci * kh * kw + t) * xs
            s0 = base + toff[t]
            for op in range(nops):
                copy_rows(buf, d + ops[4 * op], wout, rows, s0 + ops[4 * op + 1], sh * rs, ops[4 * op + 2],
                          ops[4 * op + 3])
            for q in range(pe, xs):
                buf[d + q] = 0


@njit(cache=True)
def _task(task, x, w, biasp, out, buf, cur, nhwc, groups, sh, sw, dh, dw, top, left, lanes, nb, chunks):
    """Compute task ``task = chunk·blocks + (n·groups + g)·(blocks per image and group) + block``; ``cur[0]``:
    the block the thread's buffer holds (-1: none), updated. Returns the sum of the task's outputs less the
    bias: not finite if one of them is not (or if the sum overflows)."""
    nbatch, cin, h, wd = x.shape
    cout, cig, kh, kw = w.shape
    cog = cout // groups
    if nhwc:
        hout, wout = out.shape[1], out.shape[2]
    else:
        hout, wout = out.shape[2], out.shape[3]
    npix = hout * wout
    kk = cig * kh * kw
    xs = nb * lanes
    nblk = (npix + xs - 1) // xs
    wflat = w.reshape(w.size)
    oflat = out.reshape(out.size)
    tile = np.zeros(24 * lanes, dtype=out.dtype)
    xbuf = buf[:kk * xs]
    rows = buf[kk * xs:]
    blocks = nbatch * groups * nblk
    chunk = task // blocks
    blk_id = task - chunk * blocks
    ng = blk_id // nblk
    blk = blk_id - ng * nblk
    n = ng // groups
    g = ng - n * groups
    m0 = blk * xs
    pe = min(xs, npix - m0)
    if blk_id != cur[0]:
        cur[0] = blk_id
        _im2col(x, n, g, cig, kh, kw, sh, sw, dh, dw, top, left, wout, m0, pe, xbuf, xs, rows, lanes)
    # the vectors the block has (the last may have fewer: 1 or 2 of a 4-vector layout)
    nbl = 1 if pe <= lanes else (2 if pe <= 2 * lanes else nb)
    # this chunk's channels, cut at multiples of 4 (whole narrow tiles)
    o = (chunk * cog // chunks) // 4 * 4
    o_end = cog if chunk == chunks - 1 else ((chunk + 1) * cog // chunks) // 4 * 4
    total = 0.0
    while o < o_end:
        r = gemm_block(nbl, o_end - o)
        oc0 = g * cog + o
        gemm_sweep(tile, wflat, oc0 * kk, kk, xbuf, 0, xs, kk, r, nbl)
        for rr in range(r):
            bv = biasp[oc0 + rr]
            t = tile[rr * nbl * lanes:rr * nbl * lanes + pe]
            if nhwc:
                for p in range(pe):
                    oflat[(n * npix + m0 + p) * cout + oc0 + rr] = t[p] + bv
            else:
                dst = oflat[(n * cout + oc0 + rr) * npix + m0:]
                for p in range(pe):
                    dst[p] = t[p] + bv
            for p in range(pe):
                total += t[p]
        o += r
    return total


@njit(parallel=True, cache=True)
def gemm(x, w, biasp, out, work, nhwc, groups, sh, sw, dh, dw, top, left, lanes, nb, chunks, ntasks, nthreads):
    """``out`` = the convolution of ``x`` with ``w`` (both in ``out.dtype``), ``biasp`` the bias;
    ``ntasks`` tasks (``gemm_layout``) claimed by ``nthreads`` threads, each with
    ``gemm_buffer_size(..., nb·L)`` elements of ``work``. Returns the sum of the outputs less the bias: not
    finite if an output is not (the caller's test for non-finite weights, see the module docstring)."""
    size = work.shape[0] // nthreads
    counter = np.zeros(1, dtype=np.int64)
    total = 0.0
    for th in prange(nthreads):
        buf = work[th * size:(th + 1) * size]
        cur = np.full(1, -1, dtype=np.int64)
        sub = 0.0
        task = claim(counter)
        while task < ntasks:
            sub += _task(task, x, w, biasp, out, buf, cur, nhwc, groups, sh, sw, dh, dw, top, left, lanes, nb, chunks)
            task = claim(counter)
        total += sub
    return total
