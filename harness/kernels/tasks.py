"""Work sharing for the Numba kernels' parallel loops: chunks claimed one at a time, not split up front.

A ``prange`` over the threads, each taking the next chunk of the call's work
(``claim``: an atomic counter) until none is left, instead of one fixed share
per thread. A thread that starts late (woken from sleep after a pause
between calls, Note [Bounded OpenMP spin] in ``harness.kernels.threads``), or
is preempted by another process, then holds up the call by at most the chunk it
is on: the others take the rest. With fixed shares the call waited for the
late thread's whole share, up to the time of one thread doing everything.
``chunk_count`` says how many chunks a call's work is cut into.

Like ``harness.kernels.tiles``, this file is part of the kernels' cache key
(``harness.kernels.jitcache``): ``claim`` is compiled into its callers.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# Imported for its effect: the kernels' Numba caches also key on this file (see there).
from harness.kernels import jitcache  # noqa: F401

__all__ = ["CHUNKS_PER_THREAD", "chunk_count", "claim"]

# Chunks per thread: enough that a late thread's chunk is a small part of the call, few enough that each
# chunk's set-up (tap tables, the first rows of a band) stays negligible.
CHUNKS_PER_THREAD = 4


def chunk_count(total: int, threads: int) -> int:
    """How many chunks ``total`` units of work (rows, planes, tasks) are cut into for ``threads`` threads."""
    return max(1, min(total, threads * CHUNKS_PER_THREAD))


@intrinsic
def claim(typingctx, counter):
    """``counter[0] += 1``, atomically; returns the value before: each caller gets a different one.

    ``counter`` is a 1-D int64 array shared by the threads (zero at the start of the loop). The
    order is relaxed (monotonic): the claim itself is all threads share; the chunks write disjoint
    outputs, and the end of the parallel region orders everything after it.
    """
    if not (isinstance(counter, types.Array) and counter.ndim == 1 and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        data = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0]).data
        return builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return sig, codegen
