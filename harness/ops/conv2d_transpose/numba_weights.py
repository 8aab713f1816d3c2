"""Weight repacking for the ``numba`` conv2d_transpose kernel's channel tiles (rows path).

The micro-kernel (``harness.kernels.tiles``) streams, per step, ``NB`` vectors
of output-channel weights for one tap and input channel: they must be
contiguous, in the order of the sweep. ``w`` (C_in, Cog, kh, kw) has them
``kh·kw`` elements apart, so every call repacks it (the weights are call data,
nothing is cached between calls), checking them for inf/NaN on the way.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.tiles import transpose_store

__all__ = ["pack_transposed_vector", "pack_transposed_weights"]


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def pack_transposed_weights(w, wp, lanes, nb_max=4):
    """Repack ``w`` (C_in, Cog, kh, kw) into contiguous channel blocks.

    Returns 0.0, or NaN if a weight is inf or NaN (the sum of ``weight · 0``:
    no overflow, unlike a sum of the weights).

    Output channels are cut into the blocks the kernel uses (``nb_max`` vectors of
    ``lanes``; the last block narrower, zero-padded). Block ``(g, o0)`` of
    width ``ob`` starts at ``wp[g, o0·kh·kw·Cig]`` and holds, row
    ``(i·kw + j)·Cig + ci``, the ``ob`` weights ``w[g·Cig + ci, o0 : o0 + ob, i, j]``.
    """
    groups = wp.shape[0]
    nsub = (w.shape[1] + lanes - 1) // lanes
    total = 0.0
    for r in prange(groups * nsub):     # one task per group and vector of L output channels
        total += pack_transposed_vector(w, wp, r // nsub, (r - (r // nsub) * nsub) * lanes, lanes, nb_max)
    return total


@njit(cache=True, fastmath={"reassoc"})
def pack_transposed_vector(w, wp, g, o_lo, lanes, nb_max):
    """``pack_transposed_weights`` for the ``L`` output channels from ``o_lo`` of group ``g``; returns
    their check (0.0, or NaN).

    Per input channel, its ``L × taps`` weights are contiguous in ``w``: ``L`` rows of ``taps``, which
    ``transpose_store`` turns into one ``L``-lane weight row per tap (``L`` taps at a time), checking
    them for inf/NaN on the way. A gather per weight and a sum of the weights took twice as long
    (0.18 ms of conv2d_transpose b2's 1.4 on one core). A partial vector and the array's very end (the
    block reads up to ``L - 1`` weights past the taps) are copied one by one.
    """
    cin, cog, kh, kw = w.shape
    cig = cin // wp.shape[0]
    ntap = kh * kw
    nrow = ntap * cig
    nb_main = min(nb_max, (cog + lanes - 1) // lanes)
    ob0 = (o_lo // (nb_main * lanes)) * nb_main * lanes
    ob = min(nb_main, (cog - ob0 + lanes - 1) // lanes) * lanes
    nv = min(lanes, cog - o_lo)
    wf = w.reshape(w.size)
    dflat = wp[g]
    dbase = ob0 * nrow + o_lo - ob0              # lane 0 of this vector in weight row 0 of its block
    doffs = np.empty(lanes, dtype=np.int64)
    total = 0.0
    for ci in range(cig):
        soff = ((g * cig + ci) * cog + o_lo) * ntap
        for t0 in range(0, ntap, lanes):
            if nv == lanes and soff + (lanes - 1) * ntap + t0 + lanes <= wf.size:
                for c in range(min(lanes, ntap - t0)):
                    doffs[c] = dbase + ((t0 + c) * cig + ci) * ob
                total += transpose_store(wf, soff + t0, ntap, dflat, doffs, min(lanes, ntap - t0))
            else:
                for t in range(t0, min(ntap, t0 + lanes)):
                    d = dbase + (t * cig + ci) * ob
                    for l in range(lanes):
                        v = wf[soff + l * ntap + t] if l < nv else 0
                        dflat[d + l] = v
                        total += v * 0
    return total
