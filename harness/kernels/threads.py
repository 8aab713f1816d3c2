"""How many threads a Numba kernel call uses: Numba's, less the cores other processes keep busy.

A parallel region ends when its last thread does. On a shared machine (a CI
runner, conform's own runner with several framework workers, other jobs) the
OS often has not scheduled one of the threads yet, and the call waits a whole
time slice for it: on the 2-core VM at load 5-8, a 0.5 ms convolution took
20-30 ms with 2 threads. ``fitting_threads`` sizes each call's thread team to
the cores no other process is running on, as OpenMP's ``OMP_DYNAMIC`` does
(Numba's threading layers have no such mode): one thread finishing alone beats
two waiting for each other. Measured (separate processes, 3 rounds, load 5-7,
ratio to torch with 2 threads): every conv bench shape 2-10x faster than with a
fixed 2 threads, e.g. conv2d b2 1.7 against 86, conv2d_transpose b1 0.17
against 0.40. On an idle machine it changes nothing (2.5 µs per call).

The count of runnable tasks comes from ``/proc/loadavg`` (Linux); elsewhere
the call keeps Numba's setting.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional

import numba

__all__ = ["fitting_threads"]

try:
    _LOADAVG: Optional[int] = os.open("/proc/loadavg", os.O_RDONLY)
except OSError:
    _LOADAVG = None


def _runnable() -> Optional[int]:
    """Tasks running or ready to run on the whole machine, this thread included (None: unknown)."""
    if _LOADAVG is None:
        return None
    try:
        return int(os.pread(_LOADAVG, 64, 0).split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


@contextlib.contextmanager
def fitting_threads():
    """Within: ``numba.get_num_threads()`` is the number of cores free of other processes (at least 1,
    at most Numba's setting); restored after. Usable as a decorator."""
    wanted = numba.get_num_threads()
    running = _runnable()
    if running is None or wanted == 1:
        yield
        return
    # ``running`` counts this thread and possibly our own pool's threads still spinning after the last
    # region (OpenMP's spin-wait), so ``wanted`` of it may be us: count only the rest as others.
    others = max(0, running - wanted)
    use = max(1, min(wanted, (os.cpu_count() or wanted) - others))
    numba.set_num_threads(use)
    try:
        yield
    finally:
        numba.set_num_threads(wanted)
