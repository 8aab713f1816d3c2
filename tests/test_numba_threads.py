"""``harness.kernels.threads.fitting_threads``: a kernel call's thread team shrinks to the cores other
processes leave free, never below one, and Numba's own setting is back afterwards."""

from __future__ import annotations

import os

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


@pytest.mark.parametrize("runnable, cores, expected", [
    (1, 2, 2),      # only this thread: the whole team
    (2, 2, 2),      # this thread and our own spinning pool thread: still ours
    (3, 2, 1),      # one other process running on a 2-core machine: one core left
    (9, 2, 1),      # every core busy: never below one thread
    (3, 8, 2),      # plenty of free cores: never above Numba's setting
    (None, 2, 2),   # no /proc/loadavg: Numba's setting
])
def test_team_fits_the_free_cores_and_is_restored(monkeypatch, two_threads, runnable, cores, expected):
    monkeypatch.setattr(threads, "_runnable", lambda: runnable)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    with threads.fitting_threads():
        assert numba.get_num_threads() == expected
    assert numba.get_num_threads() == 2


def test_reads_this_machines_runnable_count():
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc/loadavg on this system")
    assert threads._runnable() >= 1     # at least this thread is running
