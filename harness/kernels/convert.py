"""Operands converted to a kernel's compute dtype on Numba's threads (the numba backend's untimed step), and
the kernels' results rounded back to the case dtype (``case_result``).

Every framework adapter converts its operands with the framework before the
timed call: torch's ``torch.from_numpy(x).to(torch.float32)`` runs on torch's
threads, which are then still spinning when the timed call starts, with the
converted tensor spread over both cores' caches. Converted by NumPy instead
(one thread), a numba call found its other thread asleep and the whole input
in the caller's cache: b3 of benchmarks/avg_pool2d.yaml (0.2 ms) on two
threads took 0.210 ms after a NumPy conversion and 0.167 after this one
(one thread: 0.233 and 0.205; same process, median of 40, load 1.1), so
``compute_operand`` is numba's own conversion, on the team ``fit_threads``
gives. The values are those of NumPy's ``astype``: the operands hold values
exact in the case dtype, and float64 → float32 rounds to nearest even in both.

Like ``harness.kernels.tiles``, this module is embedded whole in reproducers.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from harness.data import round_to_dtype
from harness.kernels.tasks import chunk_count, claim
from harness.kernels.threads import fit_threads

__all__ = ["DTYPES", "case_result", "compute_dtype", "compute_operand"]

DTYPES = ("float16", "bfloat16", "float32", "float64")   # the case dtypes the kernels take


@njit(parallel=True, cache=True)
def _convert(src, dst, nchunks, nthreads):
    """``dst[:] = src`` (both C-contiguous, of one size), in chunks claimed by the threads."""
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    n = s.size
    counter = np.zeros(1, dtype=np.int64)
    for th in prange(nthreads):
        ch = claim(counter)
        while ch < nchunks:
            for i in range(ch * n // nchunks, (ch + 1) * n // nchunks):
                d[i] = s[i]
            ch = claim(counter)


@fit_threads   # a team of the cores other processes leave free (harness.kernels.threads)
def compute_operand(x, dtype) -> np.ndarray:
    """``x`` as a C-contiguous array of ``dtype`` (``numpy.float32`` or ``numpy.float64``): ``x`` itself when it
    is one already, as ``numpy.ascontiguousarray`` returns it."""
    x = np.ascontiguousarray(x)
    if x.dtype == dtype:
        return x
    out = np.empty(x.shape, dtype)
    if out.size:
        threads = numba.get_num_threads()
        _convert(x, out, chunk_count(out.size // 4096 + 1, threads), threads)
    return out


def compute_dtype(dtype, layout):
    """The NumPy dtype a kernel computes a case of ``dtype`` in (float32; float64 for float64), after checking
    ``dtype`` and ``layout`` (ValueError)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
    return np.float64 if dtype == "float64" else np.float32


def case_result(out, dtype):
    """A kernel's result in the case dtype's values: float16/bfloat16 computed in float32 are rounded once (to
    nearest even) and kept in float32; float32 and float64 results are returned as they are."""
    if dtype == "float16":
        return out.astype(np.float16).astype(np.float32)
    elif dtype == "bfloat16":
        return round_to_dtype(out, "bfloat16").astype(np.float32)
    return out
