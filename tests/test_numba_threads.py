"""``harness.kernels.threads.fitting_threads`` and ``fit_threads``: a kernel call's thread team shrinks to the cores other
processes leave free, never below one, and Numba's own setting is back afterwards."""

from __future__ import annotations

import math
import os
import threading

import pytest

numba = pytest.importorskip("numba")

from harness.kernels import threads  # noqa: E402


@pytest.fixture
def two_threads():
    before = numba.get_num_threads()
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has fewer than 2 threads here")
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("load, ours, cores, expected", [
    ((1, 0.0), 1, 2, 2),      # only this thread: the whole team
    ((2, 1.5), 2, 2, 2),      # this thread and our own spinning pool thread: still ours
    ((3, 2.0), 1, 2, 1),      # one other process running on a 2-core machine, as busy as we are: one core left
    ((3, 2.0), 2, 2, 1),      # ... while our pool thread spins too
    ((2, 2.0), 2, 2, 2),      # a load of 2, but both runnable tasks are ours
    ((2, 2.0), 1, 2, 1),      # another process runnable while our pool thread sleeps (less Numba's setting: 2)
    ((3, 2.9), 1, 2, 1),      # ... and busier
    ((3, 1.95), 1, 2, 1),     # the load average rounds up from .9 (as libgomp's does)
    ((3, 1.5), 1, 2, 2),      # runnable just now, but the load is mostly ours: a passing task
    ((3, 0.4), 1, 2, 2),      # runnable just now on an idle machine
    ((1, 3.0), 1, 2, 2),      # the load of a process just ended (the previous backend's worker): nobody else now
    ((9, 6.0), 1, 2, 1),      # every core busy: never below one thread
    ((9, 0.2), 1, 2, 2),      # a burst on an idle machine: the whole team
    ((5, 4.0), 1, 8, 2),      # plenty of free cores: never above Numba's setting
    (None, 1, 2, 2),          # no /proc/loadavg: Numba's setting
])
def test_team_fits_the_free_cores_and_is_restored(monkeypatch, two_threads, load, ours, cores, expected):
    monkeypatch.setattr(threads, "_STALLS", {"left": 0})
    monkeypatch.setattr(threads, "_stalled", lambda wall, cpu: False)   # a preempted test is not the subject
    monkeypatch.setattr(threads, "_load", lambda: load)
    monkeypatch.setattr(threads, "_own_running", lambda upto=1 << 30: min(ours, upto))
    monkeypatch.setattr(threads, "_CORES", cores)
    with threads.fitting_threads():
        assert numba.get_num_threads() == expected
    assert numba.get_num_threads() == 2
    team = threads.fit_threads(lambda *args, **kwargs: (numba.get_num_threads(), args, kwargs))
    assert team(1, k=2) == (expected, (1,), {"k": 2})      # the decorator: same team, arguments passed on
    assert numba.get_num_threads() == 2


def test_counts_its_own_runnable_threads():
    if not os.path.exists("/proc/self/task"):
        pytest.skip("no /proc/self/task on this system")
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])  # busy until stopped
    spinner.start()
    try:
        threads._THREAD_STATS["at"] = -math.inf                   # re-list: the spinner is new
        assert max(threads._own_running() for _ in range(50)) >= 2   # this thread and the spinning one
    finally:
        stop.set()
        spinner.join()
    threads._THREAD_STATS["at"] = -math.inf
    assert threads._own_running() >= 1


def test_the_decorator_restores_the_team_when_the_kernel_raises(monkeypatch, two_threads):
    monkeypatch.setattr(threads, "_STALLS", {"left": 0})
    monkeypatch.setattr(threads, "_load", lambda: (9, 6.0))

    @threads.fit_threads
    def failing():
        assert numba.get_num_threads() == 1
        raise ValueError("bad call")
    with pytest.raises(ValueError, match="bad call"):
        failing()
    assert numba.get_num_threads() == 2


def test_reads_this_machines_runnable_count_and_load_average():
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc/loadavg on this system")
    running, load1 = threads._load()
    assert running >= 1     # at least this thread is running
    assert load1 >= 0.0


_POOL_PROBE = """
import ctypes, os, numba
from harness.kernels import threads
from harness.ops.conv2d import numba_kernel   # noqa: F401  (the kernels' import starts the pool)
numba.get_num_threads()                         # or Numba does, where the kernels left it alone
print(threads.pool_spin(), numba.threading_layer(), 'GOMP_SPINCOUNT' in os.environ, flush=True)
ctypes.CDLL("libgomp.so.1").omp_display_env(1)   # the runtime's own settings, to stderr
"""


def _fresh_pool(**variables):
    """Run ``_POOL_PROBE`` in a fresh process, with no wait policy of ours in its environment but
    ``variables``: (the spin count the pool was started with, whether the variable leaked, libgomp's
    own report of its settings). Skips where Numba's threading layer is not libgomp."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in threads._WAIT_ENV} | variables
    out = subprocess.run([sys.executable, "-c", _POOL_PROBE], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=300)
    assert out.returncode == 0, out.stderr
    spin, layer, leaked = out.stdout.split()
    if layer != "omp":
        pytest.skip(f"Numba's threading layer here is {layer}, not libgomp")
    return spin, leaked, out.stderr


def test_the_pool_spins_a_bounded_while():
    """Note [Bounded OpenMP spin]: in a fresh process the kernels' pool is libgomp's, started with the spin
    count ``SPIN`` (as libgomp itself reports it), and the variable is gone from the environment after."""
    spin, leaked, settings = _fresh_pool()
    assert (spin, leaked) == (str(threads.SPIN), "False")
    assert f"GOMP_SPINCOUNT = '{threads.SPIN}'" in settings


def test_an_explicit_wait_policy_is_left_alone():
    # In a fresh process (here the pool has started already): a user's own policy wins, no spin count is set.
    spin, _, settings = _fresh_pool(OMP_WAIT_POLICY="active")
    assert spin == "None" and "OMP_WAIT_POLICY = 'ACTIVE'" in settings
    assert f"GOMP_SPINCOUNT = '{threads.SPIN}'" not in settings


@pytest.fixture
def fresh_stalls(monkeypatch):
    monkeypatch.setattr(threads, "_STALLS", {"left": 0})


def test_a_stalled_call_sends_the_next_calls_to_one_thread(monkeypatch, two_threads, fresh_stalls):
    """Note [Stalled calls]: a two-thread call whose caller sat idle (here: asleep) for most of it puts the next
    _BACKOFF calls on one thread, then the team is back."""
    import time
    monkeypatch.setattr(threads, "_load", lambda: None)          # the load says nothing: the team is Numba's
    teams = []

    @threads.fit_threads
    def kernel(stall):
        teams.append(numba.get_num_threads())
        if stall:
            time.sleep(0.005)                                   # 5 ms of wall time, no CPU time
    kernel(True)
    for _ in range(threads._BACKOFF):
        kernel(False)
    assert teams == [2] + [1] * threads._BACKOFF
    kernel(True)                                                # two threads again, and stalls again
    assert teams[-1] == 2 and threads._STALLS == {"left": threads._BACKOFF}
    assert numba.get_num_threads() == 2


@pytest.mark.parametrize("wall, cpu, stalled", [
    (5e-3, 0.0, True),          # asleep or preempted throughout
    (10e-3, 7e-3, True),        # lost 3 ms of 10
    (0.9e-3, 0.0, False),       # under _STALL_S: a short call's wake-up, not a stall
    (40e-3, 35e-3, False),      # 5 ms lost of 40: under _STALL_SHARE
    (2e-3, 2e-3, False),
])
def test_what_counts_as_a_stall(fresh_stalls, wall, cpu, stalled):
    assert threads._stalled(wall, cpu) is stalled
    assert threads._STALLS["left"] == (threads._BACKOFF if stalled else 0)


@pytest.mark.parametrize("every, expected", [(False, 1), (True, 2)])
def test_every_thread_where_nothing_else_computes(monkeypatch, two_threads, every, expected):
    """``CONFORM_ALL_THREADS=1`` (``conform bench``'s workers, Note [Turns]): a busy load average and another
    task runnable at the call do not halve the team, nor does a stalled call the next ones."""
    from harness.kernels import oracle_threads
    assert threads.ALL_THREADS == oracle_threads.ALL_THREADS     # one variable for both (not imported)
    monkeypatch.setattr(threads, "_EVERY_THREAD", every)
    monkeypatch.setattr(threads, "_load", lambda: (3, 2.0))
    monkeypatch.setattr(threads, "_own_running", lambda upto=1 << 30: 1)
    monkeypatch.setattr(threads, "_CORES", 2)
    with threads.fitting_threads():
        assert numba.get_num_threads() == expected
    monkeypatch.setattr(threads, "_load", lambda: (1, 0.0))            # an idle machine
    monkeypatch.setattr(threads, "_STALLS", {"left": 2})               # after a stalled call
    monkeypatch.setattr(threads, "_stalled", lambda wall, cpu: False)
    team = threads.fit_threads(lambda: numba.get_num_threads())
    assert team() == expected
