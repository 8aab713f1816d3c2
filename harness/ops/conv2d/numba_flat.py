"""The ``numba`` conv2d kernel's path for small output images: rows flattened into one tile sweep.

Called by ``harness.ops.conv2d.numba_kernel`` for channel tiles (``Cog`` > 4)
when the output rows are narrow. Tiling row by row, a tile then holds only the
few pixels of one row (8 for a 16×16 input at stride 2), so each tile streams
the whole ``K = kh·kw·Cig`` weight panel from L2 for a handful of pixels, and
ragged tile ends waste lanes. Here the register tile runs over the flattened
``(y, x)`` pixels of the whole image instead:

- **Packing.** Per ``(n, g)`` and thread, every input row an output row reads
  is packed (``packing.pack_row``: converted, phase-packed for the stride) once
  per kernel row ``i``: channel ``ci``, kernel row ``i``, phase ``ph`` is a
  plane of ``H_out`` rows of ``R = max(W_out + qw, packed width)`` positions,
  output row ``y`` holding input row ``y·sh + i·dh − top``. Tap ``(i, j)`` of
  flattened output position ``m = y·R + x`` then reads position ``m + q_j`` of
  plane ``(ci, i, phase_j)``: consecutive for consecutive ``m``, across rows.
  Rows in the top/bottom padding are never written (zeros). This repeats the
  input ``kh`` times, so it is only used when that buffer is small.
- **Tiles.** ``tiles.tile_sweep`` over ``m``: ``nb`` = 1 channel vector ×
  ``PMAX[1]`` = 24 pixels (the least weight traffic per multiply-add), or
  2 × 12 when ``Cog`` is a multiple of 2·L (fewer loads per multiply-add;
  every block then has the same width, so the pixel blocks line up). The
  ``R − W_out`` positions at the end of each row are computed and dropped.
  The planes are re-blocked per ``PMAX[nb]``-pixel block with input channels
  innermost, so a tile's sweep reads consecutive memory.
- **Parallelism.** ``prange`` over contiguous blocks of ``(n, g, channel
  block)`` tasks; a thread repacks when ``(n, g)`` changes. For one image
  each weight block has one task, which packs it itself (no parallel region
  of its own for the weights, and the block is used while it is in cache),
  and with one group too the threads pack the input once between them
  instead of each packing all of it (conv2d b2, one thread: 0.58 → 0.54 ms;
  with two, the minima of 31 calls at load 8 went 0.33 → 0.30-0.32 ms).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.packing import pack_row
from harness.kernels.tiles import MAX_PIX, PMAX, store_nchw, tile_sweep, tile_width
from harness.ops.conv2d.numba_weights import pack_vector

__all__ = ["flat", "flat_buffer_size"]


@njit(cache=True)
def flat_buffer_size(cig, h, wd, hout, wout, kh, kw, sw, dw, left, nb):
    """Elements of the per-thread packed buffers (the caller checks they fit in cache)."""
    qw = ((kw - 1) * dw) // sw
    rl = max(wout + qw, (left + wd - 1) // sw + 1)
    nblk = (hout * rl + PMAX[nb] - 1) // PMAX[nb]
    return cig * kh * sw * hout * rl + MAX_PIX + qw + 1 + nblk * kh * sw * cig * (PMAX[nb] + qw)


@njit(cache=True)
def _pack(x, n, g, cig, ci_lo, ci_hi, buf, blk_buf, kh, sh, sw, dh, top, left, hout, rl, pm, pb):
    """Pack input channels ``ci_lo <= ci < ci_hi`` of group ``g`` of image ``n``: planes, then re-blocked."""
    h = x.shape[2]
    plane = hout * rl
    xci = kh * sw * plane
    nmb = (plane + pm - 1) // pm
    mbs = kh * sw * cig * pb
    for ci in range(ci_lo, ci_hi):
        for i in range(kh):
            for y in range(hout):
                a = y * sh + i * dh - top
                if a >= 0 and a < h:
                    pack_row(x[n, g * cig + ci, a], buf, ci * xci + i * sw * plane + y * rl, left, sw, plane)
    # Re-block by tiles of pm pixels, input channels innermost: a tile's sweep over channels
    # then reads consecutive memory (with the planes above it would stride by a whole plane).
    for mb in range(nmb):
        for ip in range(kh * sw):
            for ci in range(ci_lo, ci_hi):
                src = buf[ci * xci + ip * plane + mb * pm:]
                dst = blk_buf[mb * mbs + (ip * cig + ci) * pb:]
                for k in range(pb):
                    dst[k] = src[k]


@njit(cache=True)
def _tasks(lo, hi, x, w, wp, pack, biasp, out, work, shared, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, nb):
    """Compute tasks ``lo <= (n·groups + g)·nblocks + block < hi`` (one thread's share); with ``pack``,
    pack each task's weight block first (``numba_weights.pack_vector``) and return the weights' sum.
    ``work`` is the thread's packing buffer, or if ``shared`` the packed input of the only ``(n, g)``."""
    nbatch, cin, h, wd = x.shape
    groups = wp.shape[0]
    cig = cin // groups
    cout = biasp.shape[0] - lanes
    cog = cout // groups
    if nhwc:
        hout, wout = out.shape[1], out.shape[2]
    else:
        hout, wout = out.shape[2], out.shape[3]
    qw = ((kw - 1) * dw) // sw
    rl = max(wout + qw, (left + wd - 1) // sw + 1)     # one packed output row, in positions
    plane = hout * rl                                   # one (channel, kernel row, phase) plane
    npix = plane                                        # flattened output positions
    wgroup = wp.shape[1]
    nrow = kh * kw * cig
    hw = hout * wout
    # blocks of nb channel vectors; only the last may be narrower, and only when nb = 1 (the caller
    # uses nb = 2 only for Cog a multiple of 2·L): the pixel blocks below are PMAX[nb] wide.
    nblocks = (cog + nb * lanes - 1) // (nb * lanes)
    wflat = wp.reshape(wp.size)
    oflat = out.reshape(out.size)
    pm = PMAX[nb]
    pb = pm + qw                                        # positions a pixel block's taps read
    nmb = (npix + pm - 1) // pm
    mbs = kh * sw * cig * pb                            # one pixel block, blocked layout
    if not shared:
        work[:] = 0                                     # padding rows/columns stay 0
    nbuf = cig * kh * sw * plane + MAX_PIX + qw + 1
    buf = work[:nbuf]
    blk_buf = work[nbuf:nbuf + nmb * mbs]
    tile = np.zeros(32 * 64, dtype=out.dtype)           # >= 32 rows x 64 lanes (padded reads)
    tx = np.empty(kh * kw, dtype=np.int64)
    tw = np.empty(kh * kw, dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            q = (j * dw) // sw
            tx[i * kw + j] = (i * sw + j * dw - q * sw) * cig * pb + q
            tw[i * kw + j] = (i * kw + j) * cig
    cur = -1
    total = 0.0
    for task in range(lo, hi):
        ng = task // nblocks
        blk = task - ng * nblocks
        n = ng // groups
        g = ng - n * groups
        if pack:
            for o_lo in range(blk * nb * lanes, min(cog, (blk + 1) * nb * lanes), lanes):
                total += pack_vector(w, wp, g, o_lo, lanes, nb)
        if ng != cur and not shared:
            cur = ng
            _pack(x, n, g, cig, 0, cig, buf, blk_buf, kh, sh, sw, dh, top, left, hout, rl, pm, pb)
        ob0 = blk * nb * lanes
        ob = nb * lanes
        nvalid = min(ob, cog - ob0)
        oc0 = g * cog + ob0
        m0 = 0
        while m0 < npix:
            rem = npix - m0
            npx = tile_width(nb, rem)
            tile_sweep(tile, blk_buf, (m0 // pm) * mbs + m0 % pm, pb, tx, wflat, g * wgroup + ob0 * nrow, tw, kh * kw,
                       cig, ob, nb, npx)
            pv = min(npx, rem)
            p = 0
            while p < pv:                               # row segments of the tile
                y = (m0 + p) // rl
                xx = m0 + p - y * rl
                if xx >= wout:                          # the dropped end of a row
                    p += rl - xx
                    continue
                cnt = min(wout - xx, pv - p)
                if nhwc:
                    for k in range(cnt):
                        o_base = ((n * hout + y) * wout + xx + k) * cout + oc0
                        for o in range(nvalid):
                            oflat[o_base + o] = tile[(p + k) * ob + o] + biasp[oc0 + o]
                else:
                    for b in range(nb):
                        nch = min(lanes, nvalid - b * lanes)
                        if nch <= 0:
                            break
                        o_base = ((n * cout + oc0 + b * lanes) * hout + y) * wout + xx
                        for p0 in range(0, cnt, lanes):
                            store_nchw(oflat, o_base + p0, hw, 1, min(lanes, cnt - p0), nch, biasp, oc0 + b * lanes,
                                       tile, (p + p0) * ob + b * lanes, ob)
                p += cnt
            m0 += npx
    return total


@njit(parallel=True, cache=True)
def flat(x, w, wp, pack, biasp, out, work, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, nb, nchunks):
    """``out`` = the convolution of ``x`` with ``w``, computed in ``out.dtype``, the
    weights packed into ``wp`` in blocks of ``nb`` vectors (``numba_weights.pack_weights`` with
    ``nb_max = nb``; ``nb`` = 2 needs ``Cog`` a multiple of 2·L): beforehand, or if ``pack`` by the
    task that uses the block (only for one image: each block then has one task). Returns the sum of
    the weights ``pack`` packed (0.0 without). ``biasp`` holds the bias, ``work`` has
    ``nchunks · flat_buffer_size(..., nb)`` elements.

    With one image and one group every thread would pack the same input: the threads pack it
    together, a range of channels each, into one buffer first, and the tasks share it.
    """
    nbatch, cin, h, wd = x.shape
    groups = wp.shape[0]
    cig = cin // groups
    cog = (biasp.shape[0] - lanes) // groups
    total = nbatch * groups * ((cog + nb * lanes - 1) // (nb * lanes))
    size = work.shape[0] // nchunks
    shared = nbatch * groups == 1 and nchunks > 1
    if shared:
        hout, wout = (out.shape[1], out.shape[2]) if nhwc else (out.shape[2], out.shape[3])
        qw = ((kw - 1) * dw) // sw
        rl = max(wout + qw, (left + wd - 1) // sw + 1)
        pm = PMAX[nb]
        pb = pm + qw
        xci = kh * sw * hout * rl
        nbuf = cig * xci + MAX_PIX + qw + 1
        nmb = (hout * rl + pm - 1) // pm
        buf = work[:nbuf]
        blk_buf = work[nbuf:nbuf + nmb * kh * sw * cig * pb]
        for ch in prange(nchunks):
            c_lo = ch * cig // nchunks
            c_hi = (ch + 1) * cig // nchunks
            buf[c_lo * xci:c_hi * xci] = 0
            if c_hi == cig:
                buf[cig * xci:] = 0
            _pack(x, 0, 0, cig, c_lo, c_hi, buf, blk_buf, kh, sh, sw, dh, top, left, hout, rl, pm, pb)
    wsum = 0.0
    for ch in prange(nchunks):
        part = work if shared else work[ch * size:(ch + 1) * size]
        wsum += _tasks(ch * total // nchunks, (ch + 1) * total // nchunks, x, w, wp, pack, biasp, out, part, shared,
                       nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, nb)
    return wsum
