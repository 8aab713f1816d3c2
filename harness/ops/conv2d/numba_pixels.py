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
  every output row has the same ``kh·kw`` taps (but the channel-row tiles
  below drop kernel rows that read padding rows only).
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
  thread, b4 unchanged. For NCHW the tile goes from the registers straight
  to the output planes, the bias added (``pixel_tiles.oc_sweep_out``; the
  tile buffer and its copy took 6% of b3). A tile sweeps only the kernel rows
  that reach the image for one of its output rows (b3: 3.4% fewer
  multiply-adds, all against the zero rows of SAME padding).
- **Measured** (one thread, CPU time of the call, this version and the
  previous one in one process, shuffled, median of 41-61 per-round ratios;
  load 2-3 from other jobs): conv2d b3 0.93-0.94 of the previous version,
  conv2d_transpose b3 (which runs here) 0.91-0.93, b4 of both 0.97-0.99
  (noise: ±3%); of which the fused store alone 0.974. Tried and dropped
  (same method): prefetching the next plane's input during the tiles (+2%
  per tile; one line per tap step: no change), a flat copy instead of
  ``pack_row`` (+18%: not vectorised), unrolling the tap loop (no change).
  Where b3 stands: the 8 × 3 sweep runs at ~160 GFLOP/s, the bound of its
  loads (the same loop in C: 168-178, plain FMAs 196), and takes ~90% of the
  call; packing ~5%.
- **Parallelism.** Chunks of consecutive planes, claimed (``harness.kernels.tasks``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.packing import pack_row
from harness.kernels.pixel_tiles import oc_block, oc_sweep, oc_sweep_out, row_sweep
from harness.kernels.tasks import claim

__all__ = ["pixel_tiles", "pixel_planes_size"]

_NB = 3   # pixel vectors per channel-row tile


@njit(cache=True)
def pixel_planes_size(cig, h, wd, hout, wout, kh, kw, sh, sw, dh, dw, top, left, lanes):
    """``(seg, padded rows, elements)`` of a thread's packed planes (one group's ``Cig`` channels)."""
    qw = ((kw - 1) * dw) // sw                          # furthest tap offset, in phase positions
    # one phase of a packed row: every lane of a tile that is kept (output column < wout) reads inside
    # it; the others read on into the next row (discarded), past the last row into 4 vectors of tail
    seg = max(wout + qw, (left + wd - 1) // sw + 1)
    hp = max((hout - 1) * sh + (kh - 1) * dh + 1, top + h)   # padded rows read (zero rows stay 0)
    return seg, hp, cig * hp * sw * seg + 4 * lanes


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
    ti = np.empty(nt, dtype=np.int64)                   # ... and kernel row
    for ci in range(cig):
        for i in range(kh):
            for j in range(kw):
                q = (j * dw) // sw
                tx[ci * kk + i * kw + j] = ci * psize + i * dh * xci + (j * dw - q * sw) * seg + q
                tw[ci * kk + i * kw + j] = ci * kk + i * kw + j
                ti[ci * kk + i * kw + j] = i
    txs = np.empty(nt, dtype=np.int64)                  # the taps of a tile whose rows skip some kernel rows
    tws = np.empty(nt, dtype=np.int64)
    for task in range(lo, hi):
        n = task // groups
        g = task - n * groups
        for ci in range(cig):
            for a in range(h):
                pack_row(x[n, g * cig + ci, a], buf, ci * psize + (top + a) * xci, left, sw, seg)
        if cog == 1:
            _one_channel(n, g, wv, nt, tw, buf, tx, tile, biasp, out, nhwc, sh, xci, hout, wout, lanes)
        else:
            _channel_rows(n, g, cog, wv, nt, tw, buf, tx, ti, txs, tws, tile, xoffs, biasp, out, nhwc, sh, dh, top, h,
                          xci, hout, wout, lanes)


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
def _channel_rows(n, g, cog, wv, nt, tw, buf, tx, ti, txs, tws, tile, xoffs, biasp, out, nhwc, sh, dh, top, h, xci,
                  hout, wout, lanes):
    """The ``cog`` output planes of group ``g``: ``oc_sweep`` tiles of channels × three pixel vectors,
    the vectors taken in order from the planes' rows (``nvr`` per row). A tile sweeps only the kernel
    rows that reach the image for one of its output rows at least (``ti``: each tap's kernel row; the
    others read zero padding rows): ``txs``/``tws`` hold that shorter list near the top and bottom."""
    nvr = (wout + lanes - 1) // lanes
    nslots = hout * nvr
    kh = ti[nt - 1] + 1
    lo_hi = (0, kh - 1)                                 # kernel rows of the list in txs/tws
    nts = nt
    ooffs = np.empty(_NB, dtype=np.int64)
    npv = np.empty(_NB, dtype=np.int64)
    plane = hout * wout
    oflat = out.reshape(out.size)
    cout = out.shape[3] if nhwc else out.shape[1]
    o0 = 0
    while o0 < cog:
        r = oc_block(cog - o0)
        oc0 = g * cog + o0
        sl = 0
        while sl < nslots:
            nb = min(_NB, nslots - sl)
            for b in range(nb):
                y = (sl + b) // nvr
                x0 = (sl + b - y * nvr) * lanes
                xoffs[b] = y * sh * xci + x0
                ooffs[b] = ((n * cout + oc0) * hout + y) * wout + x0
                npv[b] = min(lanes, wout - x0)
            ilo = max(0, -((y * sh - top) // dh))       # ceil((top - y·sh) / dh) for the tile's last row y
            ihi = min(kh - 1, (top + h - 1 - (sl // nvr) * sh) // dh)
            tl, wl, ntl = tx, tw, nt
            if ilo > 0 or ihi < kh - 1:
                if (ilo, ihi) != lo_hi:
                    lo_hi = (ilo, ihi)
                    nts = 0
                    for t in range(nt):
                        if ti[t] >= ilo and ti[t] <= ihi:
                            txs[nts] = tx[t]
                            tws[nts] = tw[t]
                            nts += 1
                tl, wl, ntl = txs, tws, nts
            if not nhwc:
                # straight from the registers to the output planes (a tile buffer and its copy: 6% of b3)
                oc_sweep_out(oflat, ooffs, plane, npv, biasp, oc0, wv, oc0 * nt, wl, buf, xoffs, tl, ntl, r, nb)
            else:
                oc_sweep(tile, wv, oc0 * nt, wl, buf, xoffs, tl, ntl, r, nb)
                for b in range(nb):
                    y = (sl + b) // nvr
                    x0 = (sl + b - y * nvr) * lanes
                    for rr in range(r):
                        t = tile[(rr * nb + b) * lanes:(rr * nb + b) * lanes + npv[b]]
                        bv = biasp[oc0 + rr]
                        for p in range(npv[b]):
                            out[n, y, x0 + p, oc0 + rr] = t[p] + bv
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
