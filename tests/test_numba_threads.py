"""``harness.kernels.threads.fitting_threads`` and ``fit_threads``: a kernel call's thread team shrinks to the cores other
processes leave free, never below one, and Numba's own setting is back afterwards."""

from __future__ import annotations

import math
import os
import threading
from types import SimpleNamespace

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


@pytest.mark.parametrize("load, own, ours, cores, expected", [
    ((1, 0.0), 0.0, 1, 2, 2),      # only this thread: the whole team
    ((2, 1.5), 1.5, 2, 2, 2),      # this thread and our own pool thread, the load all ours
    ((2, 1.3), 0.1, 2, 2, 2),      # a process just started: the load is the last one's, runnable now are ours
    ((3, 2.0), 1.0, 1, 2, 1),      # another process running on a 2-core machine, as busy as we are: one core left
    ((2, 2.9), 2.0, 2, 2, 2),      # ... busy on average, but not runnable now (both runnable are ours)
    ((4, 2.9), 2.0, 2, 2, 1),      # ... and runnable now, while our two threads were busy too
    ((3, 1.8), 1.0, 1, 2, 1),      # ... busy most of the time (the load average alone, rounded down, kept 2)
    ((2, 1.4), 1.0, 1, 2, 2),      # another process running now, but busy less than half the time
    ((3, 1.5), 1.3, 1, 2, 2),      # runnable just now, but the load is nearly all ours: a passing task
    ((3, 0.4), 0.0, 1, 2, 2),      # runnable just now on an idle machine
    ((1, 3.0), 0.2, 1, 2, 2),      # the load of a process just ended (the previous backend's worker): nobody else now
    ((9, 6.0), 1.0, 1, 2, 1),      # every core busy: never below one thread
    ((9, 0.2), 0.1, 1, 2, 2),      # a burst on an idle machine: the whole team
    ((5, 4.0), 1.0, 1, 8, 2),      # plenty of free cores: never above Numba's setting
    (None, 0.0, 1, 2, 2),          # no /proc/loadavg: Numba's setting
])
def test_team_fits_the_free_cores_and_is_restored(monkeypatch, two_threads, load, own, ours, cores, expected):
    monkeypatch.setattr(threads, "_load", lambda: load)
    monkeypatch.setattr(threads, "_own_cores", lambda: own)
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


def test_own_share_of_the_load_is_averaged_as_the_load_average_is(monkeypatch):
    clock = {"wall": 100.0, "cpu": 5.0}
    monkeypatch.setattr(threads, "time", SimpleNamespace(monotonic=lambda: clock["wall"],
                                                         process_time=lambda: clock["cpu"]))
    monkeypatch.setattr(threads, "_own", [100.0, 5.0, 0.0])
    clock["wall"] += 60.0
    clock["cpu"] += 60.0                                   # one core busy for a minute
    assert threads._own_cores() == pytest.approx(1 - math.exp(-1))
    for _ in range(10):                                    # ... for ten minutes, looked at every minute
        clock["wall"] += 60.0
        clock["cpu"] += 60.0
        busy = threads._own_cores()
    assert busy == pytest.approx(1.0, abs=1e-4)
    clock["wall"] += 60.0                                  # then idle for a minute
    assert threads._own_cores() == pytest.approx(math.exp(-1), rel=1e-3)
    assert threads._own_cores() == pytest.approx(math.exp(-1), rel=1e-3)   # no time passed: unchanged


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
