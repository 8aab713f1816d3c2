"""Weight repacking for the ``numba`` conv2d kernel's channel tiles (rows path).

The micro-kernel (``harness.kernels.tiles``) streams, per step, ``NB`` vectors
of output-channel weights for one tap and input channel: they must be
contiguous, in the order of the sweep. ``w`` (C_out, Cig, kh, kw) has them
``Cig·kh·kw`` elements apart, so every call repacks it (the weights are
call data, nothing is cached between calls).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.tiles import transpose_store

__all__ = ["pack_vector", "pack_weights"]


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def pack_weights(w, wp, lanes, nb_max):
    """Repack ``w`` (C_out, Cig, kh, kw) into contiguous channel blocks; return the float64 sum.

    The sum is not finite if a weight is inf or NaN. Output channels are cut
    into the blocks the micro-kernel uses (``nb <= nb_max`` vectors of
    ``lanes``; the last block narrower, zero-padded). Block ``(g, o0)`` of width ``ob``
    starts at ``wp[g, o0·kh·kw·Cig]`` and holds, row ``(i·kw + j)·Cig + ci``,
    the ``ob`` weights ``w[g·Cog + o0 : g·Cog + o0 + ob, ci, i, j]``.
    """
    cout = w.shape[0]
    groups = wp.shape[0]
    nsub = (cout // groups + lanes - 1) // lanes
    total = 0.0
    # One task per group and vector of L output channels (see pack_vector).
    for r in prange(groups * nsub):
        total += pack_vector(w, wp, r // nsub, (r - (r // nsub) * nsub) * lanes, lanes, nb_max)
    return total


@njit(cache=True, fastmath={"reassoc"})
def pack_vector(w, wp, g, o_lo, lanes, nb_max):
    """``pack_weights`` for the ``lanes`` output channels from ``o_lo`` of group ``g``; returns their sum.

    A transpose through a small local block (L rows of w x L input channels, read sequentially;
    written out as whole L-lane vectors). Gathering one channel vector at a time from w is several
    times slower: w's rows are Cig·kh·kw elements apart, and the cache sets alias.
    """
    cout, cig, kh, kw = w.shape
    groups = wp.shape[0]
    cog = cout // groups
    nb_main = min(nb_max, (cog + lanes - 1) // lanes)
    ntap = kh * kw
    nrow = ntap * cig
    wf = w.reshape(cout, cig * ntap)
    total = 0.0
    ob0 = (o_lo // (nb_main * lanes)) * nb_main * lanes
    ob = min(nb_main, (cog - ob0 + lanes - 1) // lanes) * lanes
    nv = min(lanes, cog - o_lo)
    dst = wp[g, ob0 * nrow + o_lo - ob0:]
    dflat = wp[g]
    loc = np.zeros((lanes, lanes * ntap), dtype=wp.dtype)   # L rows x L input channels, in L1
    lflat = loc.reshape(loc.size)
    doffs = np.empty(lanes, dtype=np.int64)
    for c0 in range(0, cig, lanes):
        nc = min(lanes, cig - c0)
        for l in range(nv):
            src = wf[g * cog + o_lo + l, c0 * ntap:(c0 + nc) * ntap]
            row = loc[l]
            for k in range(nc * ntap):
                row[k] = src[k]
                total += src[k]
        if nc == lanes:
            # L x L blocks of loc transposed in registers: column k = c·ntap + t -> weight row t·Cig + c0 + c
            for k0 in range(0, lanes * ntap, lanes):
                for c in range(lanes):
                    k = k0 + c
                    doffs[c] = ob0 * nrow + o_lo - ob0 + ((k % ntap) * cig + c0 + k // ntap) * ob
                transpose_store(lflat, k0, lanes * ntap, dflat, doffs, lanes)
        else:
            for t in range(ntap):
                for c in range(nc):
                    d = dst[(t * cig + c0 + c) * ob:(t * cig + c0 + c) * ob + lanes]
                    for l in range(lanes):
                        d[l] = loc[l, c * ntap + t]
    return total
