"""The ``numba`` conv2d kernel's path for one input channel per group (depthwise).

Called by ``harness.ops.conv2d.numba_kernel`` when ``Cig = 1`` and ``Cog <= 4``:
there a tile of output channels would use ``Cog/L`` of each vector, and the work
(``kh·kw`` multiply-adds per output) is too little to hide any extra pass over
memory. So the loop order is the memory order:

- **Planes.** Each task is one ``(n, g)`` input plane: it is converted from
  float64 and phase-packed (``tiles.pack_row``) into a per-thread buffer with
  zero rows for the top/bottom padding (small enough for L1/L2), read
  sequentially once; its ``Cog`` output planes are then written row after
  row, sequentially. Padding, rows and columns, is computed against zeros, so
  every output row has the same ``kh·kw`` taps.
- **Row tiles.** ``tiles.row_sweep`` computes 8 vectors of outputs per call:
  2 rows × 4 vectors of pixels, 4 × 2 or 8 × 1 (as wide as the row needs),
  the weight of each tap broadcast. Several rows per call keep enough
  independent accumulators to hide the FMA latency with 9 taps.
- **Parallelism.** ``prange`` over contiguous blocks of planes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.tiles import pack_row, row_sweep

__all__ = ["depthwise"]


@njit(cache=True)
def _planes(lo, hi, x, wv, kh, kw, biasp, out, nhwc, sh, sw, dh, dw, top, left, lanes):
    """Compute every output of input planes ``lo <= n·C_in + g < hi`` (one thread's share)."""
    nbatch, cin, h, wd = x.shape
    if nhwc:
        hout, wout, cout = out.shape[1], out.shape[2], out.shape[3]
    else:
        cout, hout, wout = out.shape[1], out.shape[2], out.shape[3]
    cog = cout // cin
    kk = kh * kw
    qw = ((kw - 1) * dw) // sw                          # furthest tap offset, in phase positions
    # one phase of a packed row; 4 vectors of zeros on the right: a tile reads < 4·L past wout
    seg = max(wout + qw, (left + wd - 1) // sw + 1) + 4 * lanes
    xci = sw * seg                                      # one packed row
    hp = max((hout - 1) * sh + (kh - 1) * dh + 1, top + h)   # padded rows read (zero rows stay 0)
    buf = np.zeros(hp * xci, dtype=out.dtype)           # one packed, zero-padded plane
    tile = np.zeros(8 * lanes, dtype=out.dtype)
    tx = np.empty(kk, dtype=np.int64)                   # per-tap input offset from the row's base
    tw = np.empty(kk, dtype=np.int64)                   # per-tap weight offset
    for i in range(kh):
        for j in range(kw):
            q = (j * dw) // sw
            tx[i * kw + j] = i * dh * xci + (j * dw - q * sw) * seg + q
            tw[i * kw + j] = i * kw + j
    for task in range(lo, hi):
        n = task // cin
        g = task - n * cin
        for a in range(h):
            pack_row(x[n, g, a], buf, (top + a) * xci, left, sw, seg)
        for o in range(cog):
            oc = g * cog + o
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
                    row_sweep(tile, wv, oc * kk, tw, buf, y * sh * xci + s, sh * xci, tx, kk, nb, many)
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


@njit(parallel=True, cache=True)
def depthwise(x, wv, kh, kw, biasp, out, nhwc, sh, sw, dh, dw, top, left, lanes, nchunks):
    """``out`` = the convolution of float64 ``x`` (N, C_in, H, W) with ``C_in`` groups, computed in
    ``out.dtype``; ``wv`` is the weight array (C_out, 1, kh, kw) flattened, ``biasp`` the bias."""
    total = x.shape[0] * x.shape[1]
    for ch in prange(nchunks):
        _planes(ch * total // nchunks, (ch + 1) * total // nchunks,
                x, wv, kh, kw, biasp, out, nhwc, sh, sw, dh, dw, top, left, lanes)
