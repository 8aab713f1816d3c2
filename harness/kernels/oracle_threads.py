"""How the float64 oracles (conv2d's, conv2d_transpose's) run on threads: their compiled loops (Numba, without
the GIL), how many threads a call gets (the cores free of other processes), the pool those threads live in,
which core they wake on, and how many threads BLAS takes meanwhile.

Note [Oracle threads]
---------------------
One thread in the parent, where the oracle runs beside the framework workers
(``threads`` defaults to 1); in the ``numpy`` backend, which passes the
worker's cores, as many as are free of other processes (``free_cores``).
Each thread runs a compiled loop (no GIL) on its own output planes, or a BLAS
path on its own images (or, for a single image, output rows or channels)
with BLAS on one thread (``blas_threads``), so no Numba thread pool is
ever started and no two pools compete (``on_threads``). The exception is a
call that is one matrix product at a time (conv2d, one image of one group):
BLAS's own threads share each product, on the free cores (in the ``numpy``
worker they sleep as soon as it ends: Note [BLAS threads that sleep] in
``harness/backends/numpy_ref.py``).

Both oracles import this module, and it imports nothing from conform (only
the standard library; Numba and threadpoolctl on first use, where they are
installed): a reproducer that embeds an oracle embeds this module whole, once,
in place of the import (``_embedded_whole`` in ``harness/backends/program.py``),
so its pool and its thread ids are defined once there too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = ["ALL_THREADS", "blas_threads", "compiled", "free_cores", "on_threads"]

#: Set to "1" where nothing else computes while the in-house kernels run (``conform bench``'s workers, Note
#: [Turns] in harness/bench.py): every call then takes every thread it may, whatever the load says.
ALL_THREADS = "CONFORM_ALL_THREADS"
_EVERY_THREAD = os.environ.get(ALL_THREADS) == "1"


@functools.cache
def compiled(loops):
    """``loops`` compiled by Numba, once (imported here, on first use: it takes a tenth of a second to import),
    without the GIL, so that ``on_threads`` runs its ranges at once; None without Numba."""
    try:
        from numba import njit
    except ImportError:
        return None
    # Numba's cache names the module and imports it to load an entry: one loaded from its file under another
    # name (a script) would write entries no later process can load (ModuleNotFoundError: '<dynamic>').
    return njit(cache=sys.modules.get(loops.__module__) is not None, nogil=True)(loops)


def free_cores(threads):
    """``threads``, fewer when other processes keep the cores busy: a thread that waits for a core holds the
    whole call up for a time slice (as ``harness/kernels/threads.py`` finds for the numba backend). Both signals
    of ``/proc/loadavg`` (Linux) must say so, as there: the 1-minute load average (rounded as libgomp's
    ``OMP_DYNAMIC`` rounds it, one of it this thread) and the tasks runnable now less this process's own. Either
    alone halved calls on an idle machine: a task runnable at the instant of the call (a shell, a kernel worker)
    or our own pool thread, runnable when the load was read and asleep when our threads were counted.
    ``ALL_THREADS`` in the environment: ``threads``."""
    if threads <= 1 or _EVERY_THREAD:
        return max(1, threads)
    try:
        fields = _read(LOADAVG).split()
        load, running = float(fields[0]), int(fields[3].split(b"/")[0])   # ``running``: this thread included
    except (OSError, IndexError, ValueError):
        return threads
    busy = int(load + 0.1) - 1
    others = min(busy, max(0, running - _own_runnable())) if busy > 0 and running > 1 else 0
    return max(1, min(threads, (os.cpu_count() or threads) - others))


LOADAVG = "/proc/loadavg"


def _read(path):
    """The start of a small file's bytes, without ``open``'s buffered text file: a call's 10 µs instead of 35
    (first thing in an oracle call, caches cold; b4 of benchmarks/ takes 0.6 ms)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 256)
    finally:
        os.close(fd)


def _own_runnable():
    """This process's threads that are running or ready to run, this one included: our own threads just
    finishing the previous call are not other processes (counted as such, they halved every other call)."""
    count = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/stat") as f:
                count += f.read().rsplit(")", 1)[1].split()[0] == "R"
    except (OSError, IndexError):
        return 1
    return max(count, 1)


def on_threads(loops, tasks, threads, *args):
    """``loops(*args, lo, hi)`` over tasks [0, ``tasks``), split into contiguous ranges, one per thread: the
    first on the calling thread, which would otherwise only wait: one thread fewer to wake and schedule (b2 and
    b4 of benchmarks/, conv2d, two threads at load 4-5: 0.9 and 1.2 against 1.4 and 1.6 ms, every range on
    the pool)."""
    if threads <= 1 or tasks < 2:
        loops(*args, 0, tasks)
        return
    bounds = [tasks * k // threads for k in range(threads + 1)]
    pool = _pool(threads - 1)
    _keep_off(_current_core())
    others = [pool.submit(_anywhere, loops, *args, bounds[k], bounds[k + 1]) for k in range(1, threads)]
    try:
        loops(*args, bounds[0], bounds[1])
    finally:                # every range done before the call returns or raises: none writes into ``out`` later
        wait(others)
    for part in others:
        part.result()


@functools.cache
def _pool(threads):
    """``threads`` threads kept for the process's life: starting them costs 60 µs a call (b2 of benchmarks/
    runs in 0.7 ms)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="oracle",
                              initializer=lambda: _POOL_THREADS.append(threading.get_native_id()))


_POOL_THREADS: list = []        # the pool threads' native ids


@functools.cache
def _libc():
    try:
        import ctypes
        return ctypes.CDLL(None)
    except (ImportError, OSError):
        return None


def _current_core():
    """The core this thread runs on (``sched_getcpu``, glibc), or None."""
    try:
        return _libc().sched_getcpu()
    except AttributeError:          # no libc, or no such function
        return None


def _keep_off(core):
    """Let the pool threads wake on any core but ``core``, the caller's, which computes the first range itself.
    A thread woken from sleep is put on its waker's core first on this VM (its kernel packs woken tasks onto
    the waker's vCPU: ``sched_vcpu_pack``), where it waits for the caller's range before it starts its own;
    kept off that core, it starts at once on the idle one (b2 of benchmarks/, conv2d, in the ``numpy``
    worker: 1.05 against 1.4-1.5 ms). Once running, each range lifts the restriction (``_anywhere``): a thread
    held to one core that another process then takes could not move to the caller's. Linux only."""
    if core is None or core < 0 or not hasattr(os, "sched_setaffinity"):
        return
    cores = os.sched_getaffinity(0) - {core}
    for tid in _POOL_THREADS if cores else ():
        try:
            os.sched_setaffinity(tid, cores)
        except OSError:             # the thread has ended, or the cores are not ours to give
            pass


def _anywhere(loops, *args):
    """``loops(*args)`` on a pool thread, first allowed every core again (``_keep_off``)."""
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, _ALL_CORES)
        except OSError:
            pass
    loops(*args)


_ALL_CORES = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def blas_threads(count):
    """Within: BLAS computes on ``count`` threads, whatever it was set to (None, or without threadpoolctl: as BLAS
    is set)."""
    controller = _blas_controller() if count else None
    return contextlib.nullcontext() if controller is None else controller.limit(limits=count, user_api="blas")
