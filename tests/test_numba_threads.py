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


_PASSIVE_PROBE = """
import os, time, numpy as np
from harness.kernels import threads
from harness.ops.conv2d.numba_kernel import conv2d
import numba
numba.set_num_threads(2)
x, w = np.ones((1, 256, 16, 16), np.float32), np.ones((128, 256, 3, 3), np.float32)
for _ in range(3):                      # the kernel itself: two threads whatever the load
    conv2d.__wrapped__(x, w, None, stride=2, dilation=1, groups=1, pads=(0, 1, 0, 1), out_hw=(8, 8))
idle = time.process_time()
time.sleep(0.3)
idle = time.process_time() - idle
print(threads.pool_is_passive(), numba.threading_layer(), 'OMP_WAIT_POLICY' in os.environ, round(idle * 1e3, 3))
"""


def test_the_pool_sleeps_between_calls_rather_than_spin():
    """Note [Passive OpenMP pool]: in a fresh process the kernels' pool is libgomp's, started passive, the
    variable gone from the environment after; after a two-thread call the process uses next to no CPU while
    it waits (libgomp's default spin burns 3.4 ms of CPU after each region here)."""
    import subprocess
    import sys
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has fewer than 2 threads here")
    env = {k: v for k, v in os.environ.items() if k not in threads._WAIT_ENV}
    out = subprocess.run([sys.executable, "-c", _PASSIVE_PROBE], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=300)
    assert out.returncode == 0, out.stderr
    passive, layer, leaked, idle_ms = out.stdout.split()
    if layer != "omp":
        pytest.skip(f"Numba's threading layer here is {layer}, not libgomp")
    assert (passive, leaked) == ("True", "False")
    assert float(idle_ms) < 1.0          # CPU ms over 300 ms of waiting (spinning: 3.4, its whole spin): none


def test_an_explicit_wait_policy_is_left_alone(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert threads.launch_passive() == threads.pool_is_passive()
    assert os.environ["OMP_WAIT_POLICY"] == "active"
