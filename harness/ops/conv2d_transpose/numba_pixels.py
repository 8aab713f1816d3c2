"""The ``numba`` transposed convolution's path for few output channels per group (grouped, depthwise).

Called by ``harness.ops.conv2d_transpose.numba_kernel`` when a tile of
output channels would leave most of each vector idle (``Cog`` below ``L``:
groups of 8 → 8 filled half of every vector, and the epilogue, a 16 × 16
transpose per 16 pixels and 8 channels, cost more than the multiply-adds).
Here the vectors hold output pixels instead:

- **Phases.** As in the channel-tile kernel, output row ``Y`` (``yy = Y + top``)
  and column phase ``px`` form a stride-1 correlation: phase column ``k`` is
  output column ``x0 + k·sw`` and reads, per tap ``(i, j)`` with
  ``(i·dh) mod sh = yy mod sh`` and ``(j·dw) mod sw = px``, input row
  ``yy div sh − (i·dh) div sh`` at column ``xq_lo + k − (j·dw) div sw``:
  consecutive columns for consecutive ``k``. Taps whose input row is outside
  the image are dropped per row (so rows past the full output get no tap:
  the bias alone).
- **Planes.** Per ``(n, g)`` task the group's ``Cig`` input planes are
  converted to the compute dtype into a per-thread buffer, each row with
  ``(kw−1)·dw div sw`` zeros on the left and enough on the right that
  columns past the full output read zeros (``0·w``; non-finite weights go to
  the exact fallback before this path).
- **Tiles.** ``pixel_tiles.oc_sweep``: up to 8 output channels × 2 vectors of
  ``L`` phase columns, the weights broadcast. For stride 2 the two column
  phases of a row are computed one after the other and stored interleaved
  (a loop LLVM vectorises), so the output is written once, in order.
- **Parallelism.** Chunks of consecutive ``(n, g)`` tasks, claimed (``harness.kernels.tasks``).
- **Stride 1** (``as_correlation``): conv2d's pixel tiles on the flipped
  kernel, whose vectors may span output rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.packing import scratch
from harness.kernels.pixel_tiles import OC_MAX, oc_block, oc_sweep, pack_oc_weights, store_pair
from harness.kernels.tasks import chunk_count, claim
from harness.ops.conv2d.numba_pixels import pixel_planes_size, pixel_tiles

__all__ = ["as_correlation", "pixel_path", "planes_size", "transposed_pixels"]


def pixel_path(cog, cnt, lanes, tasks, threads):
    """Whether a call takes this path (vectors of pixels) rather than channel tiles: for few channels
    per group, or when a phase row of ``cnt`` columns fills at least as much of each vector as the
    group's channels do. With one vector of channels (``Cog = L``) the channel tile issues a broadcast load
    per multiply-add and 8 channels × 2 pixel vectors do not (conv2d_transpose b3: 13.0 → 12.0 ms
    on one thread), if the rows fill whole vectors — given ``tasks`` (images × groups, this path's
    unit of parallel work) for every thread."""
    if cog <= 4:
        return True
    if cog > lanes or tasks < threads:
        return False
    fill = cnt / (-(-cnt // lanes) * lanes)
    return fill >= cog / lanes if cog == lanes else fill > cog / lanes


@njit(cache=True)
def planes_size(cig, h, wd, wout, kw, sw, dw, left, lanes):
    """``(row length, elements)`` of a thread's packed planes (one group's ``Cig`` channels)."""
    qw = ((kw - 1) * dw) // sw                          # furthest tap offset, in input columns
    cnt = (wout + sw - 1) // sw                         # the longest phase row
    span = (cnt + 2 * lanes - 1) // (2 * lanes) * 2 * lanes   # ... rounded up to whole tiles
    rs = max(qw + wd, qw + (sw - 1 + left) // sw + span) + 1
    return rs, cig * h * rs


@njit(cache=True)
def _store(out, oflat, nhwc, n, y, oc0, r, nb, biasp, tile, tsize, s, pvs, x0s, sw, first, second, lanes):
    """Phase columns ``s ..`` of the tiles of every column phase (tile ``px`` at ``px·tsize``, row
    ``rr`` holding channel ``oc0 + rr``) to output row ``y``: interleaved in registers for stride 2 NCHW."""
    if nhwc:
        hout, wout, cout = out.shape[1], out.shape[2], out.shape[3]
    else:
        cout, hout, wout = out.shape[1], out.shape[2], out.shape[3]
    for rr in range(r):
        oc = oc0 + rr
        bv = biasp[oc]
        roff = rr * nb * lanes
        if not nhwc and sw == 2:
            obase = ((n * cout + oc) * hout + y) * wout + 2 * s
            for b in range(nb):
                na = min(lanes, pvs[first] - b * lanes)
                if na <= 0:
                    break
                store_pair(oflat, obase + 2 * b * lanes, tile, first * tsize + roff + b * lanes, tile,
                           second * tsize + roff + b * lanes, na, max(0, min(lanes, pvs[second] - b * lanes)), bv)
            continue
        if not nhwc and sw == 1:
            t = tile[roff:]
            orow = out[n, oc, y, x0s[0] + s:]
            for k in range(pvs[0]):
                orow[k] = t[k] + bv
            continue
        for px in range(sw):
            t = tile[px * tsize + roff:]
            xb = x0s[px] + s * sw
            for k in range(pvs[px]):
                if nhwc:
                    out[n, y, xb + k * sw, oc] = t[k] + bv
                else:
                    out[n, oc, y, xb + k * sw] = t[k] + bv


@njit(cache=True)
def _tasks(lo, hi, x, wv, groups, kh, kw, biasp, out, work, nhwc, sh, sw, dh, dw, top, left, lanes):
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
    qw = ((kw - 1) * dw) // sw
    rs, _ = planes_size(cig, h, wd, wout, kw, sw, dw, left, lanes)
    cs = h * rs                                         # one packed plane
    buf = work                                          # zeroed by the caller: padding columns stay 0
    tsize = OC_MAX * 2 * lanes                          # one column phase's tile
    tile = np.zeros(sw * tsize + lanes, dtype=out.dtype)
    ntmax = cig * kk
    # Tap lists per (row phase py, column phase px), offsets relative to input row yy div sh: used for
    # every row all of whose taps read rows inside the image (rows near the top and bottom get their
    # own list, without the taps that fall outside).
    ftx = np.empty(sh * sw * ntmax, dtype=np.int64)
    ftw = np.empty(sh * sw * ntmax, dtype=np.int64)
    fnt = np.zeros(sh * sw, dtype=np.int64)
    qlo = np.full(sh, kh * dh, dtype=np.int64)          # least and greatest row offset of a row phase's taps
    qhi = np.zeros(sh, dtype=np.int64)
    for py in range(sh):
        for px in range(sw):
            f = py * sw + px
            nt = 0
            for ci in range(cig):
                for i in range(kh):
                    if (i * dh) % sh != py:
                        continue
                    qi = (i * dh) // sh
                    qlo[py] = min(qlo[py], qi)
                    qhi[py] = max(qhi[py], qi)
                    for j in range(kw):
                        if (j * dw) % sw == px:
                            ftx[f * ntmax + nt] = ci * cs - qi * rs + qw - (j * dw) // sw
                            ftw[f * ntmax + nt] = ci * kk + i * kw + j
                            nt += 1
            fnt[f] = nt
    tx = np.empty(sw * ntmax, dtype=np.int64)           # border rows: per column phase, input offsets of the taps
    tw = np.empty(sw * ntmax, dtype=np.int64)           # ... and weight offsets
    nts = np.zeros(sw, dtype=np.int64)
    x0s = np.empty(sw, dtype=np.int64)                  # first output column of each phase
    xqs = np.empty(sw, dtype=np.int64)                  # ... its input column (before the tap offset)
    cnts = np.empty(sw, dtype=np.int64)                 # ... its number of columns
    pvs = np.zeros(sw, dtype=np.int64)
    xoffs = np.zeros(2, dtype=np.int64)
    oflat = out.reshape(out.size)
    for px in range(sw):
        x0s[px] = (px - left) % sw
        xqs[px] = (x0s[px] + left) // sw
        cnts[px] = max(0, (wout - x0s[px] + sw - 1) // sw)
    first = left % sw                                   # the phase of output column 0 (stride 2: and 1)
    second = (left + 1) % sw
    cmax = cnts[first]
    for task in range(lo, hi):
        n = task // groups
        g = task - n * groups
        for ci in range(cig):
            for a in range(h):
                src = x[n, g * cig + ci, a]
                dst = buf[ci * cs + a * rs + qw:]
                for c in range(wd):
                    dst[c] = src[c]
        for y in range(hout):
            yy = y + top
            py = yy % sh
            yq = yy // sh
            inside = yq - qhi[py] >= 0 and yq - qlo[py] < h
            if inside:
                rowbase = yq * rs
                tl = ftx[py * sw * ntmax:(py + 1) * sw * ntmax]
                wl = ftw[py * sw * ntmax:(py + 1) * sw * ntmax]
                for px in range(sw):
                    nts[px] = fnt[py * sw + px]
            else:
                rowbase = 0
                tl = tx
                wl = tw
                for px in range(sw):
                    nt = 0
                    for ci in range(cig):
                        for i in range(kh):
                            if (i * dh) % sh != py:
                                continue
                            a = yq - (i * dh) // sh
                            if a < 0 or a >= h:
                                continue
                            for j in range(kw):
                                if (j * dw) % sw == px:
                                    tx[px * ntmax + nt] = ci * cs + a * rs + qw - (j * dw) // sw
                                    tw[px * ntmax + nt] = ci * kk + i * kw + j
                                    nt += 1
                    nts[px] = nt
            o0 = 0
            while o0 < cog:
                r = oc_block(cog - o0)
                s = 0
                while s < cmax:
                    nb = 2 if cmax - s > lanes else 1
                    for px in range(sw):
                        pvs[px] = max(0, min(nb * lanes, cnts[px] - s))
                        if pvs[px] == 0:
                            continue
                        for b in range(nb):
                            xoffs[b] = rowbase + xqs[px] + s + b * lanes
                        oc_sweep(tile[px * tsize:(px + 1) * tsize], wv, (g * cog + o0) * ntmax, wl[px * ntmax:],
                                 buf, xoffs, tl[px * ntmax:], nts[px], r, nb)
                    _store(out, oflat, nhwc, n, y, g * cog + o0, r, nb, biasp, tile, tsize, s, pvs, x0s, sw, first,
                           second, lanes)
                    s += nb * lanes
                o0 += r


@njit(parallel=True, cache=True)
def transposed_pixels(x, wv, groups, kh, kw, biasp, out, work, nhwc, sh, sw, dh, dw, top, left, lanes, nchunks,
                      nthreads):
    """``out`` = the transposed convolution of ``x`` (N, C_in, H, W), computed in ``out.dtype``; ``wv``
    holds the weights (C_in, Cog, kh, kw), all finite, packed by ``pixel_tiles.pack_oc_weights``,
    ``biasp`` the bias, ``work`` has ``nthreads · planes_size(...)[1]`` elements; ``nchunks`` chunks of
    tasks, claimed."""
    total = x.shape[0] * groups
    size = work.shape[0] // nthreads
    counter = np.zeros(1, dtype=np.int64)
    for th in prange(nthreads):
        buf = work[th * size:(th + 1) * size]
        buf[:] = 0
        ch = claim(counter)
        while ch < nchunks:
            _tasks(ch * total // nchunks, (ch + 1) * total // nchunks, x, wv, groups, kh, kw, biasp, out,
                   buf, nhwc, sh, sw, dh, dw, top, left, lanes)
            ch = claim(counter)


def as_correlation(x, w, groups, biasp, out, nhwc, dh, dw, top, left, lanes, threads):
    """Stride 1: the transposed convolution is the correlation of ``x`` with the flipped kernel, padded by
    ``(k − 1)·d`` less the crop (so at least 0 here): ``out[y, x] = Σ x[y + p_h − i'·dh, ...] ·
    w[ci, o, kh−1−i', kw−1−j']``. The conv2d pixel path computes it with its wider tiles of 8 channels ×
    3 pixel vectors (across rows; here a row's phase holds only 2 or 1 at a time): conv2d_transpose
    b3 on one thread, CPU time, 11.2-11.5 → 10.5 ms (conv2d b3's time: the same shapes)."""
    nbatch, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    hout, wout = (out.shape[1], out.shape[2]) if nhwc else (out.shape[2], out.shape[3])
    pt, pl = (kh - 1) * dh - top, (kw - 1) * dw - left
    nthreads = max(1, min(nbatch * groups, threads))
    wv = np.empty(w.size, w.dtype)
    pack_oc_weights(np.ascontiguousarray(w[:, :, ::-1, ::-1]), True, groups, wv)
    size = pixel_planes_size(cin // groups, h, wd, hout, wout, kh, kw, 1, 1, dh, dw, pt, pl, lanes)[2]
    pixel_tiles(x, wv, groups, kh, kw, biasp, out, scratch(nthreads * size, w.dtype), nhwc, 1, 1, dh, dw, pt, pl,
                lanes, chunk_count(nbatch * groups, nthreads), nthreads)
