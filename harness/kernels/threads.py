"""How Numba kernel calls use threads: Numba's pool with a bounded spin (Note [Bounded OpenMP spin]), and
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
setting, as it does where ``CONFORM_ALL_THREADS=1`` says that nothing else
computes meanwhile (``conform bench``'s workers: Note [Turns] in
``harness/bench.py``); there no stalled call sends the next ones to one
thread either (Note [Stalled calls]).

Note [Stalled calls]
--------------------
A call on several threads whose caller lost more than _STALL_S and
_STALL_SHARE of its time (wall time less the calling thread's CPU time:
preempted, or asleep waiting for a pool thread that no core ran) sends the
next _BACKOFF calls to one thread. The load average, ``_team``'s other signal,
takes tens of seconds to see a process that just started: meanwhile most
two-thread calls of conv2d b2 took 5-10 ms (``conform bench`` as another job
started: load 0.7 -> 2.6 during the run; measured with a passive pool, before
the bounded spin), against 0.35 ms on one thread. On a quiet machine the
caller computes or spins through the whole call (lost time ~0). A backoff that
doubled while stalls recurred (up to 64 calls) kept whole benchmark cases (18
calls) on one thread after a few passing stalls at load 1.3-1.5 (conv2d b3
10.2 ms against 5.1 on two threads): a fixed run of calls costs at most those,
and under lasting contention one call in _BACKOFF + 1 stalls.

Note [Bounded OpenMP spin]
--------------------------
Numba's threading layer here is ``omp`` (GNU libgomp). By default libgomp's
threads *spin* after a parallel region and at its closing barrier for 300 000
``pause`` loops (3.4 ms on this CPU) before they sleep. When any other task is
runnable, that is the stall: the pool thread, spinning between calls, has used
its share of its core and waits a whole time slice behind the other task when
the next region starts, while the calling thread spins at the closing barrier
on the other core. Measured (conv2d b2, 2 threads forced, 300 calls in one
process, load 4.3 from other jobs): median 10.9 ms and 293 calls over 2 ms; a
near-empty region 7.6 ms. This is the ~7 ms per call that ``conform bench``
saw on b2 of both operators whenever another process ran while the load
average still said the machine was quiet (``_team`` then keeps both threads).

Not spinning at all (``OMP_WAIT_POLICY=passive``) ends that stall (0.42 ms,
2 calls over 2 ms) but, on an idle machine, makes every region serial: this
VM's kernel packs woken tasks onto busy vCPUs (``sched_vcpu_pack``), so the
woken pool thread preempts the caller on its own core instead of starting on
the idle one (a region of two 50 µs halves: 105 µs passive, 52 µs spinning;
conv2d b2: 0.46 ms passive, 0.25 spinning ~1 ms, 0.27 the default). So the
pool is started with ``GOMP_SPINCOUNT=100000`` (~1.1 ms here): longer than the
gap between two calls of a benchmark run (0.3-0.45 ms for the small shapes,
``Backend.run``'s own work), so on a quiet machine the pool thread is still
spinning when the next call starts; short enough that a late thread costs a
caller at most that, not a time slice. The kernels' work is claimed chunk by
chunk (``harness.kernels.tasks``), so a thread that is late does not hold its
share of the work either. ``launch_pool`` (run on import, before any kernel)
sets the variable for libgomp's load only (it reads its environment once):
children and OpenMP runtimes loaded later do not see it. An explicit
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in the environment is left alone;
``pool_spin`` says what the pool was started with.
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

__all__ = ["SPIN", "fit_threads", "fitting_threads", "launch_pool", "pool_spin"]

_ROUND_UP = 0.1    # libgomp's "biased rounding" of the load average (gomp_dynamic_max_threads)
_CORES = os.cpu_count() or 1    # read once: os.cpu_count() takes ~2 µs

#: As ``harness.kernels.oracle_threads.ALL_THREADS`` (not imported: a numba reproducer embeds this module whole).
ALL_THREADS = "CONFORM_ALL_THREADS"
_EVERY_THREAD = os.environ.get(ALL_THREADS) == "1"      # read once, as Numba reads its own settings

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
    load = None if _EVERY_THREAD else _load()
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
    """Decorator: each call of ``kernel`` runs with the team ``fitting_threads`` gives, or one thread while
    a recent call stalled (``_stalled``). ~3 µs a call when the team is Numba's setting, against ~7 for the
    context manager as a decorator (a generator, ``os.cpu_count`` and two ``numba.set_num_threads`` every
    call): conv2d b2 takes 0.25 ms on two threads."""
    @functools.wraps(kernel)
    def call(*args, **kwargs):
        wanted = numba.get_num_threads()
        use = _team(wanted) if wanted > 1 else 1
        if use > 1 and _STALLS["left"] > 0 and not _EVERY_THREAD:
            _STALLS["left"] -= 1
            use = 1
        if use > 1:
            began, began_cpu = time.perf_counter(), time.thread_time()
        if use != wanted:
            numba.set_num_threads(use)
        try:
            return kernel(*args, **kwargs)
        finally:
            if use != wanted:
                numba.set_num_threads(wanted)
            if use > 1:
                _stalled(time.perf_counter() - began, time.thread_time() - began_cpu)
    return call


# Note [Stalled calls] (in the module docstring): the thresholds.
_STALL_S = 1e-3
_STALL_SHARE = 0.25
_BACKOFF = 4
_STALLS = {"left": 0}


def _stalled(wall: float, cpu: float) -> bool:
    """Record a several-thread call's wall and calling-thread CPU time (s); True if it stalled."""
    lost = wall - cpu
    if lost > _STALL_S and lost > _STALL_SHARE * wall:
        _STALLS["left"] = _BACKOFF
        return True
    return False


_WAIT_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
SPIN = 100_000   # libgomp's spin count for Numba's pool (Note [Bounded OpenMP spin])
_POOL: dict = {"spin": None}


def _libgomp_loaded() -> bool:
    """Whether a GNU OpenMP runtime is already mapped into this process (then it has read its environment)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


def launch_pool() -> Optional[int]:
    """Start Numba's thread pool (if not yet started) with libgomp's spin count ``SPIN`` (Note [Bounded
    OpenMP spin]); returns ``pool_spin()``. Nothing is changed when the pool has started already, another
    libgomp is loaded, the environment chooses a wait policy, or the layer is not ``omp``."""
    from numba.np.ufunc import parallel
    if parallel._is_initialized or any(name in os.environ for name in _WAIT_ENV):
        return _POOL["spin"]
    if str(numba.config.THREADING_LAYER).lower() not in ("default", "omp") or _libgomp_loaded():
        return None
    os.environ["GOMP_SPINCOUNT"] = str(SPIN)
    try:
        numba.get_num_threads()                 # launches the layer: libgomp loads and reads its environment
    finally:
        del os.environ["GOMP_SPINCOUNT"]
    _POOL["spin"] = SPIN if numba.threading_layer() == "omp" else None
    return _POOL["spin"]


def pool_spin() -> Optional[int]:
    """The spin count ``launch_pool`` started Numba's pool with (None: not started by it)."""
    return _POOL["spin"]


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


launch_pool()   # before any kernel runs: see Note [Bounded OpenMP spin]
