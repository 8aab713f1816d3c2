"""The ``numba`` conv2d kernel's path for one input channel per group (depthwise).

Called by ``harness.ops.conv2d.numba_kernel`` when ``Cig = 1`` and ``Cog <= 4``:
there a tile of output channels would use ``Cog/L`` of each vector, and the work
(``kh·kw`` multiply-adds per output) is too little to hide any extra pass over
memory. So the loop order is the memory order:

- **Planes.** Each task is one ``(n, g)`` input plane: it is copied (converted
  if need be) and phase-packed (``packing.pack_row``) into a per-thread buffer with
  zero rows for the top/bottom padding (small enough for L1/L2), read
  sequentially once; its ``Cog`` output planes are then written row after
  row, sequentially. Padding, rows and columns, is computed against zeros, so
  every output row has the same ``kh·kw`` taps.
- **Row tiles** (one output channel per group). ``pixel_tiles.row_sweep``
  computes 8 vectors of outputs per call: 2 rows × 4 vectors of pixels,
  4 × 2 or 8 × 1 (as wide as the row needs), the weight of each tap
  broadcast. Several rows per call keep enough independent accumulators to
  hide the FMA latency with 9 taps.
- **Channel-row tiles** (several output channels per group, e.g. groups of
  8 → 8). ``pixel_tiles.oc_sweep``: up to 8 output channels × 3 vectors of
  pixels (the output plane's rows cut into vectors, three at a time, across
  rows), so each input vector loaded serves 8 multiply-adds instead of one.
  Per output channel with ``row_sweep`` the loads outnumbered the
  multiply-adds (conv2d b4, groups 8: 0.77 → 0.47 ms on one thread); 3
  vectors rather than 2 issue fewer loads and loop instructions per
  multiply-add (24 accumulators): conv2d b3 11.9-12.3 → 10.5-10.8 ms on one
  thread, b4 unchanged.
- **Parallelism.** Chunks of consecutive planes, claimed (``harness.kernels.tasks``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.packing import pack_row
from harness.kernels.pixel_tiles import oc_block, oc_sweep, row_sweep
from harness.kernels.tasks import claim

__all__ = ["pixel_tiles", "pixel_planes_size"]

_NB = 3   # pixel vectors per channel-row tile


@njit(cache=True)
def pixel_planes_size(cig, h, wd, hout, wout, kh, kw, sh, sw, dh, dw, top, left, lanes):
    """``(seg, padded rows, elements)`` of a thread's packed planes (one group's ``Cig`` channels)."""
    qw = ((kw - 1) * dw) // sw                          # furthest tap offset, in phase positions
    # one phase of a packed row; 4 vectors of zeros on the right: a tile reads < 4·L past wout
    seg = max(wout + qw, (left + wd - 1) // sw + 1) + 4 * lanes
    hp = max((hout - 1) * sh + (kh - 1) * dh + 1, top + h)   # padded rows read (zero rows stay 0)
    return seg, hp, cig * hp * sw * seg


@njit(cache=True)
def _planes(lo, hi, x, wv, groups, kh, kw, biasp, out, work, nhwc, sh, sw, dh, dw, top, left, lanes):
    """Compute every output of groups ``lo <= n·groups + g < hi`` (a chunk); ``work`` is the thread's,
    zero but where earlier chunks of this call packed planes (every task packs the same positions)."""
    nbatch, cin, h, wd = x.shape
    if nhwc:
        hout, wout, cout = out.shape[1], out.shape[2], out.shape[3]
    else:
        cout, hout, wout = out.shape[1], out.shape[2], out.shape[3]
    cig = cin // groups
    cog = cout // groups
    kk = kh * kw
    seg, hp, _ = pixel_planes_size(cig, h, wd, hout, wout, kh, kw, sh, sw, dh, dw, top, left, lanes)
    xci = sw * seg                                      # one packed row
    psize = hp * xci                                    # one packed, zero-padded plane
    buf = work                                          # zeroed by the caller: padding stays 0
    tile = np.zeros(24 * lanes, dtype=out.dtype)
    xoffs = np.zeros(3, dtype=np.int64)
    nt = cig * kk
    tx = np.empty(nt, dtype=np.int64)                   # per-(channel, tap) input offset from the row's base
    tw = np.empty(nt, dtype=np.int64)                   # ... and weight offset in w[oc]
    for ci in range(cig):
        for i in range(kh):
            for j in range(kw):
                q = (j * dw) // sw
                tx[ci * kk + i * kw + j] = ci * psize + i * dh * xci + (j * dw - q * sw) * seg + q
                tw[ci * kk + i * kw + j] = ci * kk + i * kw + j
    for task in range(lo, hi):
        n = task // groups
        g = task - n * groups
        for ci in range(cig):
            for a in range(h):
                pack_row(x[n, g * cig + ci, a], buf, ci * psize + (top + a) * xci, left, sw, seg)
        if cog == 1:
            _one_channel(n, g, wv, nt, tw, buf, tx, tile, biasp, out, nhwc, sh, xci, hout, wout, lanes)
        else:
            _channel_rows(n, g, cog, wv, nt, tw, buf, tx, tile, xoffs, biasp, out, nhwc, sh, xci, hout, wout, lanes)


@njit(cache=True)
def _one_channel(n, g, wv, nt, tw, buf, tx, tile, biasp, out, nhwc, sh, xci, hout, wout, lanes):
    """The output plane of group ``g``'s only channel: ``row_sweep`` tiles of rows × pixel vectors."""
    oc = g
    bv = biasp[oc]
    s = 0
    while s < wout:
        rem = wout - s
        nb = 4 if rem > 2 * lanes else (2 if rem > lanes else 1)
        pv = min(nb * lanes, rem)
        nr = 8 // nb
        y = 0
        while y < hout:
            many = hout - y >= nr
            row_sweep(tile, wv, oc * nt, tw, buf, y * sh * xci + s, sh * xci, tx, nt, nb, many)
            for r in range(nr if many else 1):
                t = tile[r * nb * lanes:r * nb * lanes + pv]
                if nhwc:
                    for p in range(pv):
                        out[n, y + r, s + p, oc] = t[p] + bv
                else:
                    dst = out[n, oc, y + r, s:s + pv]
                    for p in range(pv):
                        dst[p] = t[p] + bv
            y += nr if many else 1
        s += nb * lanes


@njit(cache=True)
def _channel_rows(n, g, cog, wv, nt, tw, buf, tx, tile, xoffs, biasp, out, nhwc, sh, xci, hout, wout, lanes):
    """The ``cog`` output planes of group ``g``: ``oc_sweep`` tiles of channels × two pixel vectors,
    the vectors taken in order from the planes' rows (``nvr`` per row)."""
    nvr = (wout + lanes - 1) // lanes
    nslots = hout * nvr
    o0 = 0
    while o0 < cog:
        r = oc_block(cog - o0)
        oc0 = g * cog + o0
        sl = 0
        while sl < nslots:
            nb = min(_NB, nslots - sl)
            for b in range(nb):
                y = (sl + b) // nvr
                xoffs[b] = y * sh * xci + (sl + b - y * nvr) * lanes
            oc_sweep(tile, wv, oc0 * nt, tw, buf, xoffs, tx, nt, r, nb)
            for b in range(nb):
                y = (sl + b) // nvr
                x0 = (sl + b - y * nvr) * lanes
                pv = min(lanes, wout - x0)
                for rr in range(r):
                    t = tile[(rr * nb + b) * lanes:(rr * nb + b) * lanes + pv]
                    bv = biasp[oc0 + rr]
                    if nhwc:
                        for p in range(pv):
                            out[n, y, x0 + p, oc0 + rr] = t[p] + bv
                    else:
                        dst = out[n, oc0 + rr, y, x0:x0 + pv]
                        for p in range(pv):
                            dst[p] = t[p] + bv
            sl += nb
        o0 += r


@njit(parallel=True, cache=True)
def pixel_tiles(x, wv, groups, kh, kw, biasp, out, work, nhwc, sh, sw, dh, dw, top, left, lanes, nchunks, nthreads):
    """``out`` = the convolution of ``x`` (N, C_in, H, W), computed in ``out.dtype``; ``wv`` holds the
    weights (C_out, Cig, kh, kw) packed by ``pixel_tiles.pack_oc_weights``, ``biasp`` the bias, ``work``
    has ``nthreads · pixel_planes_size(...)[2]`` elements; ``nchunks`` chunks of planes, claimed."""
    total = x.shape[0] * groups
    size = work.shape[0] // nthreads
    counter = np.zeros(1, dtype=np.int64)
    for th in prange(nthreads):
        buf = work[th * size:(th + 1) * size]
        buf[:] = 0
        ch = claim(counter)
        while ch < nchunks:
            _planes(ch * total // nchunks, (ch + 1) * total // nchunks, x, wv, groups, kh, kw, biasp, out,
                    buf, nhwc, sh, sw, dh, dw, top, left, lanes)
            ch = claim(counter)
