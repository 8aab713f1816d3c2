"""How Numba kernel calls use threads: Numba's pool started passive (Note [Passive OpenMP pool]), and
each call's team: Numba's threads, less the cores other processes keep busy.

A parallel region ends when its last thread does. On a shared machine (a CI
runner, conform's own runner with several framework workers, other jobs) the
OS often has not scheduled one of the threads yet, and the call waits a whole
time slice for it: on the 2-core VM at load 5-8, a 0.5 ms convolution took
20-30 ms with 2 threads. ``fitting_threads`` sizes each call's thread team to
the cores no other process is running on, as OpenMP's ``OMP_DYNAMIC`` does
(Numba's threading layers have no such mode): one thread finishing alone beats
two waiting for each other. Measured (each library in its own process, 2
threads, 4 rounds at load 4.3-5.8; median ratio to torch, before → after this
and the row-end tile widths of ``tiles.WIDTHS``):
conv2d b1 0.34 → 0.15, b2 34 → 2.2, b4 12.6 → 1.7, b5 0.48 → 0.05;
conv2d_transpose b1 0.87 → 0.55, b2 1.02 → 0.75, b4 0.96 → 0.24; b3 of both
unchanged (0.4-0.5). The cost: in a quiet stretch of a loaded machine the small
shapes run on one thread while torch gets both cores (conv2d b2: 0.67 against
0.29 ms). On an idle machine nothing changes (~2 µs per call).

Both signals must agree that other processes are busy: the count of runnable
tasks at the call less this process's own (``_own_running``: a pool thread
still spinning from the last region is runnable, 98% of the time in a run of
calls), and the 1-minute load average (rounded as libgomp's ``OMP_DYNAMIC``
rounds its own, one of it taken as this thread's). A task that is runnable at
the instant of a call on an otherwise idle machine (a shell, a kernel worker, a
file watcher) used to halve the team for that call; in ``conform bench`` on a
lightly used machine that put most numba calls on one core while torch had
both (the small shapes' medians equal to their one-thread times). The load
average less this process's own CPU time (averaged like the load) was tried as
the second signal and dropped: a fresh worker's average starts at 0 while the
load still holds the previous backend's, so at load 1.4-1.8 it halved 40-50%
of the calls while torch ran cleanly on two threads (conv2d b1 4.9 against
2.3 ms).

Both come from ``/proc/loadavg`` (Linux); elsewhere the call keeps Numba's
setting.

Note [Passive OpenMP pool]
--------------------------
Numba's threading layer here is ``omp`` (GNU libgomp). By default libgomp's
threads *spin* after a parallel region and at its closing barrier (300 000
``pause`` loops, milliseconds on this CPU) before they sleep. When any other
task is runnable, that is the stall: the pool thread, spinning between calls,
has used its share of its core and waits a whole time slice behind the other
task when the next region starts, while the calling thread spins at the
closing barrier on the other core, so neither frees a core for the other.
Measured (conv2d b2, 2 threads forced, 300 calls in one process, load 4.3 from
other jobs): median 10.9 ms and 293 calls over 2 ms spinning, 0.42 ms and 2
over 2 ms passive (one thread: 0.36 ms); a near-empty region: 7.6 ms against
47 µs. This is the ~7 ms per call that ``conform bench`` saw on b2 of both
operators whenever another process ran while the load average still said the
machine was quiet (``_team`` then keeps both threads). ``launch_passive`` (run
on import, before any kernel) starts Numba's pool with ``OMP_WAIT_POLICY=passive``:
libgomp reads its environment once, as it loads, so the variable is set for
that moment only (children and other OpenMP runtimes loaded later do not see
it). A waiting thread then sleeps at once and a region's start wakes it (a
futex wake, tens of µs); the caller sleeps at the closing barrier, freeing its
core for a late thread. An explicit ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
in the environment is left alone; ``pool_is_passive`` says whether the pool
was started this way.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time
from typing import Optional

import numba

__all__ = ["fit_threads", "fitting_threads", "launch_passive", "pool_is_passive"]

_ROUND_UP = 0.1    # libgomp's "biased rounding" of the load average (gomp_dynamic_max_threads)
_CORES = os.cpu_count() or 1    # read once: os.cpu_count() takes ~2 µs

try:
    _LOADAVG: Optional[int] = os.open("/proc/loadavg", os.O_RDONLY)
except OSError:
    _LOADAVG = None


def _load() -> Optional[tuple[int, float]]:
    """``(runnable, load1)``: tasks running or ready to run on the whole machine now, this thread
    included, and their 1-minute average (None: unknown)."""
    if _LOADAVG is None:
        return None
    try:
        fields = os.pread(_LOADAVG, 64, 0).split()
        return int(fields[3].split(b"/")[0]), float(fields[0])
    except (OSError, IndexError, ValueError):
        return None


# This process's threads' /proc stat files (opened once; re-listed every second, for threads started since).
_THREAD_STATS: dict = {"at": -math.inf, "fds": {}}


def _own_running(upto: int = 1 << 30) -> int:
    """Threads of this process running or ready to run now, this one included (a pool thread that
    spins after a region counts: 98% of the time in a run of calls); counting stops at ``upto``."""
    now = time.monotonic()
    fds = _THREAD_STATS["fds"]
    if now - _THREAD_STATS["at"] > 1.0:
        _THREAD_STATS["at"] = now
        try:
            listed = set(os.listdir("/proc/self/task"))
        except OSError:
            listed = set()
        for tid in set(fds) - listed:
            os.close(fds.pop(tid))
        for tid in listed - set(fds):
            try:
                fds[tid] = os.open(f"/proc/self/task/{tid}/stat", os.O_RDONLY)
            except OSError:
                pass
    me = str(threading.get_native_id())
    n = 1
    for tid, fd in fds.items():
        try:
            stat = os.pread(fd, 512, 0)
            state = stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3]   # after "pid (name) "
        except (OSError, ValueError):           # the thread has ended
            continue
        if tid != me and state == b"R":
            n += 1
            if n >= upto:
                break
    return n


def _team(wanted: int) -> int:
    """Threads for a call: ``wanted`` (Numba's setting, above 1) less the cores others keep busy, at least 1."""
    load = _load()
    if load is None:
        return wanted
    running, load1 = load
    # Others busy on average: the load average, one of it this thread, busy through a run of calls (in
    # `conform bench` on an idle machine the load is ~1.1 from the benchmark alone). Only if there are
    # any, those runnable now: ``running`` less our own threads (~5 µs to read, so only then).
    busy = int(load1 + _ROUND_UP) - 1
    if busy <= 0 or running <= 1:
        return wanted
    others = min(busy, max(0, running - _own_running(running)))
    return max(1, min(wanted, _CORES - others))


def fit_threads(kernel):
    """Decorator: each call of ``kernel`` runs with the team ``fitting_threads`` gives. ~2 µs a call
    when the team is Numba's setting, against ~7 for the context manager as a decorator (a generator,
    ``os.cpu_count`` and two ``numba.set_num_threads`` every call): conv2d b2 takes 0.2 ms on two threads."""
    @functools.wraps(kernel)
    def call(*args, **kwargs):
        wanted = numba.get_num_threads()
        use = _team(wanted) if wanted > 1 else 1
        if use == wanted:
            return kernel(*args, **kwargs)
        numba.set_num_threads(use)
        try:
            return kernel(*args, **kwargs)
        finally:
            numba.set_num_threads(wanted)
    return call


_WAIT_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_PASSIVE: dict = {"pool": False}


def _libgomp_loaded() -> bool:
    """Whether a GNU OpenMP runtime is already mapped into this process (then it has read its environment)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


def launch_passive() -> bool:
    """Start Numba's thread pool (if not yet started) with libgomp's passive wait policy (Note [Passive
    OpenMP pool]); True if the pool runs that way. Nothing is changed when the pool has started already,
    another libgomp is loaded, the environment chooses a wait policy, or the layer is not ``omp``."""
    from numba.np.ufunc import parallel
    if parallel._is_initialized or any(name in os.environ for name in _WAIT_ENV):
        return _PASSIVE["pool"]
    if str(numba.config.THREADING_LAYER).lower() not in ("default", "omp") or _libgomp_loaded():
        return False
    os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        numba.get_num_threads()                 # launches the layer: libgomp loads and reads its environment
    finally:
        del os.environ["OMP_WAIT_POLICY"]
    _PASSIVE["pool"] = numba.threading_layer() == "omp"
    return _PASSIVE["pool"]


def pool_is_passive() -> bool:
    """Whether Numba's pool was started by ``launch_passive`` (its threads sleep rather than spin)."""
    return _PASSIVE["pool"]


@contextlib.contextmanager
def fitting_threads():
    """Within: ``numba.get_num_threads()`` is the number of cores free of other processes (at least 1,
    at most Numba's setting); restored after."""
    wanted = numba.get_num_threads()
    use = _team(wanted) if wanted > 1 else 1
    numba.set_num_threads(use)
    try:
        yield
    finally:
        numba.set_num_threads(wanted)


launch_passive()   # before any kernel runs: see Note [Passive OpenMP pool]
