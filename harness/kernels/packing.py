"""Packed inputs for the Numba convolution kernels: one input row, and the memory it goes to.

- ``pack_row``: one input row converted to the compute dtype and
  phase-packed for a stride (used by every conv2d path).
- ``scratch``: work memory reused from call to call.

Like ``harness.kernels.tiles``, this file is part of the kernels' cache key
(``harness.kernels.jitcache``): ``pack_row`` is inlined into its callers.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

# Imported for its effect: the kernels' Numba caches also key on this file (see there).
from harness.kernels import jitcache  # noqa: F401

__all__ = ["pack_row", "scratch"]


@njit(cache=True, inline="always")   # called per row: the call itself cost as much as the copy
def pack_row(src, dst, base, left, sw, seg):
    """Copy input row ``src`` into ``dst`` (converting to its dtype), phase-packed for stride ``sw``.

    Padded column ``c + left`` goes to phase ``(c + left) mod sw``, position
    ``(c + left) div sw``, phase ``p`` starting at ``dst[base + p·seg]``: a
    strided convolution's taps then read consecutive positions. Positions of
    padding columns are not written (the caller keeps them zero).
    """
    wd = src.shape[0]
    if sw == 1:
        d = dst[base + left:base + left + wd]
        for c in range(wd):
            d[c] = src[c]
    elif sw == 2:
        # even and odd columns in one loop with a constant stride: LLVM vectorises it (deinterleave)
        e = left % 2
        de = dst[base + e * seg + left // 2:]              # column 2k -> phase e, position k + left div 2
        do = dst[base + (1 - e) * seg + (left + 1) // 2:]  # column 2k+1 -> the other phase
        for k in range(wd // 2):
            de[k] = src[2 * k]
            do[k] = src[2 * k + 1]
        if wd % 2:
            de[wd // 2] = src[wd - 1]
    else:
        # per phase, every sw-th input column to consecutive positions (no division per element)
        for ph in range(sw):
            c0 = (ph - left) % sw
            d = dst[base + ph * seg + (c0 + left) // sw:]
            for k in range((wd - c0 + sw - 1) // sw):
                d[k] = src[c0 + k * sw]


_SCRATCH = threading.local()


def scratch(n, dtype) -> np.ndarray:
    """A 1-D work array of ``n`` elements, reused from call to call (per Python thread).

    Contents are undefined: the kernel zeroes what it needs. It starts on a
    64-byte boundary (a cache line, one 512-bit vector). Allocating
    ~1 MB per Numba thread and call costs page faults and zeroing by the OS
    each time (glibc hands the worker threads' large blocks back to the
    system): 15-20% of a small convolution.
    """
    arrays = _SCRATCH.__dict__.setdefault("arrays", {})
    key = np.dtype(dtype).str
    a = arrays.get(key)
    if a is None or a.size < n:
        a = arrays[key] = np.empty(n + 64, dtype)
    skip = (-a.ctypes.data % 64) // a.itemsize         # start on a 64-byte boundary
    return a[skip:skip + n]
