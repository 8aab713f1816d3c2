"""``conform bench`` (harness/bench.py): what the parent does while a worker times its calls, and the warm-up."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from harness import bench
from harness.cases import load_suite
from tests.helpers import ROOT


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_parent_prepares_calls_with_blas_on_one_thread(monkeypatch):
    """Note [A quiet parent]: OpenBLAS threads left spinning by the parent's oracle took a core from the
    worker's first timed calls. ``prepare`` must run with BLAS on one thread, whatever BLAS is set to."""
    if max(_blas_threads(), default=1) < 2:
        pytest.skip("BLAS runs on one thread here already: nothing for the bench to limit")
    seen = []
    real = bench.prepare

    def watched(case):
        seen.append(_blas_threads())
        return real(case)

    monkeypatch.setattr(bench, "prepare", watched)
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[0]
    call = bench._call(case, "float64")
    assert seen and all(threads == [1] * len(threads) for threads in seen), seen
    assert call.dtype == "float64" and case.dtype == "float32"     # the case itself is left as it was
    assert np.asarray(call.arrays["x"]).dtype == np.float64


def test_a_warm_up_lasts_its_calls_and_its_seconds(monkeypatch):
    """Note [Steady state]: timings start only after ``warmup`` calls *and* ``warmup_s`` seconds of calls."""
    from harness.backends.numpy_ref import NumpyBackend
    backend = NumpyBackend()
    backend.setup()
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1]     # b2: one image, a few ms in float64
    call = bench._call(case, "float64")
    starts = []
    real = backend.run

    def timed(call):
        starts.append(time.perf_counter())
        return real(call)

    monkeypatch.setattr(backend, "run", timed)
    times = backend.bench(call, warmup=1, repeats=3, warmup_s=0.15)
    assert len(times) == 3 and all(t > 0 for t in times)
    assert starts[-3] - starts[0] >= 0.15 - 1e-3, starts[-3] - starts[0]   # the clock starts just before the first
    assert starts[-4] - starts[0] < 0.15          # and no call more than that: the last warm-up began inside it

    starts.clear()
    assert len(backend.bench(call, warmup=5, repeats=2, warmup_s=0.0)) == 2
    assert len(starts) == 7                       # a count alone, when the time is zero


def test_bench_json_records_the_warm_up(tmp_path):
    """A real ``run_bench`` through a numpy worker: one case, its row, and the warm-up it used."""
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1]
    result = bench.run_bench([case], ["numpy"], tmp_path, warmup=1, repeats=2, log=lambda line: None,
                             warmup_s=0.05)
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written == result
    assert (written["warmup"], written["warmup_s"], written["repeats"]) == (1, 0.05, 2)
    [row] = written["results"]
    assert (row["case"], row["backend"], row["dtype"], row["status"], row["repeats"]) == \
        (case.id, "numpy", "float64", "ok", 2)
    # Note [The oracle's BLAS]: the kernels the oracle's products ran on, and whether the environment chose them.
    loaded = next(pool for pool in threadpool_info() if pool["user_api"] == "blas")
    assert written["blas"]["kernels"] == loaded["architecture"]
    assert written["blas"]["coretype_variable"] == os.environ.get("OPENBLAS_CORETYPE")


def test_the_in_house_kernels_take_every_thread_in_the_bench_workers(tmp_path, monkeypatch):
    """Note [Turns]: nothing else computes during a turn, so the bench's workers run with
    ``CONFORM_ALL_THREADS=1`` (the in-house teams do not shrink for the load the other backends left)."""
    monkeypatch.delenv("CONFORM_ALL_THREADS", raising=False)
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1]
    seen = []

    def environment(worker):
        return dict(line.split(b"=", 1) for line in (Path(f"/proc/{worker.process.pid}/environ").read_bytes()
                                                      .split(b"\0")) if b"=" in line)
    real = bench.worker_for

    def spied(bid, **kw):
        worker = real(bid, **kw)
        timed = worker.bench
        worker.bench = lambda *args: seen.append(environment(worker).get(b"CONFORM_ALL_THREADS")) or timed(*args)
        return worker
    monkeypatch.setattr(bench, "worker_for", spied)
    bench.run_bench([case], ["numpy"], tmp_path, warmup=1, repeats=1, log=lambda line: None, warmup_s=0.0)
    assert seen == [b"1"]
    assert "CONFORM_ALL_THREADS" not in os.environ             # the parent's own environment is left alone
    probe = "from harness.kernels import oracle_threads, threads; print(oracle_threads._EVERY_THREAD, threads._EVERY_THREAD)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "CONFORM_ALL_THREADS": "1"})
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_the_table_says_when_the_environment_chose_the_blas_kernels():
    from rich.console import Console
    console = Console(record=True, width=300)
    result = {"peak": bench.peak_gflops(), "repeats": 1, "results": [],
              "blas": {"library": "openblas", "version": "0.3.31", "kernels": "Haswell",
                       "coretype_variable": "Haswell"}}
    bench.print_table(result, console)
    assert "oracle BLAS: openblas 0.3.31, Haswell kernels (OPENBLAS_CORETYPE=Haswell is set" in console.export_text()
    result["blas"]["coretype_variable"] = None
    console = Console(record=True, width=300)
    bench.print_table(result, console)
    text = console.export_text()
    assert "Haswell kernels" in text and "OPENBLAS_CORETYPE" not in text


def _spy_workers(monkeypatch, events, bench_call=None, warms=None):
    """``bench.worker_for`` returning real workers whose turns, quiet waits and stops land in ``events`` (and
    each turn's warm-up, (calls, seconds), in ``warms``)."""
    real, real_wait = bench.worker_for, bench._Workers.wait_until_quiet

    def spied(bid, **kw):
        worker = real(bid, **kw)
        timed, stop = worker.bench, worker.stop

        def turn(call, warmup, repeats, *rest):
            events.append(("bench", call.case_id, bid, repeats))
            if warms is not None:
                warms.append((warmup, *rest[1:]))
            return (bench_call or timed)(call, warmup, repeats, *rest)
        worker.bench = turn
        worker.stop = lambda kill=False: events.append(("stop", bid, kill)) or stop(kill)
        return worker

    monkeypatch.setattr(bench, "worker_for", spied)
    monkeypatch.setattr(bench._Workers, "wait_until_quiet",
                        lambda self, bid: events.append(("quiet", bid)) or real_wait(self, bid))


def test_backends_take_turns_on_each_case_and_rounds_share_the_timed_calls(tmp_path, monkeypatch):
    """Note [Turns]: every worker starts once; on each case every backend takes a turn per round, each round
    starting one backend further down the list, after the other workers are quiet, timing its share of the
    calls; a row's median is over every round's; every worker is stopped at the end. A backend's first turn on
    a case warms up as asked, its later ones for one call and ``rewarm_s`` (Note [Steady state])."""
    from harness import envs
    if not envs.availability("torch.functional")[0]:
        pytest.skip("torch.functional is not installed here: the turns need three backends")
    backends = ["numpy", "numba", "torch.functional"]
    cases = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1:4:2]       # b2, and b4 (grouped)
    events, warms = [], []
    _spy_workers(monkeypatch, events, warms=warms)
    result = bench.run_bench(cases, backends, tmp_path, warmup=2, repeats=5, log=lambda line: None,
                             warmup_s=0.01, rounds=3, rewarm_s=0.0)
    b2, b4 = (case.id for case in cases)
    turns = [event[1:] for event in events if event[0] == "bench"]
    order = ["numpy", "numba", "torch.functional", "numba", "torch.functional", "numpy",
             "torch.functional", "numpy", "numba"]
    counts = [2, 2, 2, 2, 2, 2, 1, 1, 1]
    assert turns == [(case, bid, count) for case in (b2, b4) for bid, count in zip(order, counts)]
    assert warms == ([(2, 0.01)] * 3 + [(1, 0.0)] * 6) * 2
    waits = [events[k - 1] for k, event in enumerate(events) if event[0] == "bench"]
    assert waits == [("quiet", bid) for _, bid, _ in turns]       # each turn right after its wait
    assert sorted(event[1:] for event in events if event[0] == "stop") == [(bid, False) for bid in sorted(backends)]
    assert [(row["backend"], row["status"], row["repeats"]) for row in result["results"]] == \
        [(bid, "ok", 5) for bid in backends for _ in cases]
    assert all(len(row["times_ms"]) == 5 and row["median_ms"] == statistics.median(row["times_ms"])
               for row in result["results"])
    assert result["rounds"] == 3
    events.clear()
    bench.run_bench(cases[:1], backends[:2], tmp_path, warmup=1, repeats=1, log=lambda line: None, warmup_s=0.0)
    assert [event[1:] for event in events if event[0] == "bench"] == [(b2, "numpy", 1), (b2, "numba", 1)]
    assert bench.run_bench(cases, [], tmp_path, log=lambda line: None)["results"] == []   # no backend chosen


def test_a_backend_that_fails_takes_no_more_turns_on_that_case_and_keeps_its_timings(tmp_path, monkeypatch):
    from harness.worker import Crash
    cases = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1:3]
    events = []

    def failing_from(first_failing_turn):
        def turn(call, warmup, repeats, *rest):
            turns = sum(event[0] == "bench" for event in events)
            return Crash("killed by signal 9") if turns >= first_failing_turn else [1.0] * repeats
        return turn
    _spy_workers(monkeypatch, events, failing_from(1))
    rows = bench.run_bench(cases, ["numpy"], tmp_path, warmup=1, repeats=3, log=lambda line: None,
                           warmup_s=0.0, rounds=3)["results"]
    # The first case's first turn fails: not tried again on it, tried on the next case (and failing there too).
    assert [event[1] for event in events if event[0] == "bench"] == [case.id for case in cases]
    assert [(row["status"], "signal 9" in row["reason"]) for row in rows] == [("failed", True)] * 2
    events.clear()
    monkeypatch.undo()                      # the spies of the first run
    _spy_workers(monkeypatch, events, failing_from(2))
    [row, _] = bench.run_bench(cases, ["numpy"], tmp_path, warmup=1, repeats=3, log=lambda line: None,
                               warmup_s=0.0, rounds=3)["results"]
    # A failure after a timed call keeps it and ends the backend's turns on that case (a hang: one timeout).
    assert [event[1] for event in events if event[0] == "bench"] == [cases[0].id] * 2 + [cases[1].id]
    assert (row["status"], row["repeats"], row["stopped"]["status"]) == ("ok", 1, "failed")
    assert "signal 9" in row["stopped"]["reason"]
    from rich.console import Console
    console = Console(record=True, width=300)
    bench.print_table(json.loads((tmp_path / "bench.json").read_text()), console)
    assert "(1 calls, then failed)" in console.export_text()


def test_a_worker_that_died_between_turns_warms_up_as_on_a_first_turn(tmp_path, monkeypatch):
    """Note [Steady state]: a later turn only wakes a warm worker up; a worker killed while idle restarts fresh
    for its turn and gets the first turn's warm-up."""
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1]
    warms, killed = [], []
    real = bench.worker_for

    def spied(bid, **kw):
        worker = real(bid, **kw)
        timed = worker.bench

        def turn(call, warmup, repeats, timeout_s, warmup_s):
            warms.append((warmup, warmup_s))
            times = timed(call, warmup, repeats, timeout_s, warmup_s)
            if len(warms) == 2:                     # killed from outside after its second turn
                killed.append(worker.process.pid)
                worker.process.kill()
                worker.process.join(5)
            return times
        worker.bench = turn
        return worker
    monkeypatch.setattr(bench, "worker_for", spied)
    [row] = bench.run_bench([case], ["numpy"], tmp_path, warmup=2, repeats=4, log=lambda line: None,
                            warmup_s=0.01, rounds=4, rewarm_s=0.0)["results"]
    assert warms == [(2, 0.01), (1, 0.0), (2, 0.01), (1, 0.0)] and killed
    assert (row["status"], row["repeats"]) == ("ok", 4)


def test_an_interrupted_bench_kills_its_workers(tmp_path, monkeypatch):
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1]
    events = []

    def interrupted(*args):
        if sum(event[0] == "bench" for event in events) >= 2:
            raise KeyboardInterrupt
        return [1.0]
    _spy_workers(monkeypatch, events, interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.run_bench([case], ["numpy", "numba"], tmp_path, warmup=1, repeats=2, log=lambda line: None,
                        warmup_s=0.0, rounds=2)
    assert sorted(event[1:] for event in events if event[0] == "stop") == [("numba", True), ("numpy", True)]


def _process_that_spins(seconds: float):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-c", f"import time\nend = time.time() + {seconds}\n"
                             "while time.time() < end: pass\ntime.sleep(30)"])


def test_a_turn_waits_until_the_other_workers_are_quiet(monkeypatch):
    """Note [Turns]: a runtime's threads spin after its calls; the next turn waits until the other workers
    have used no CPU for ``QUIET_S``, at most ``QUIET_MAX_S``, and not for its own worker."""
    from types import SimpleNamespace

    from harness.worker import Worker
    spinning = _process_that_spins(0.6)
    try:
        workers = bench._Workers(log=lambda line: None)
        other = Worker("numba", "unused")
        other.process = SimpleNamespace(pid=spinning.pid)
        gone = Worker("torch.functional", "unused")                 # a worker not running: cpu_ticks -1
        workers.started = {"numba": (other, None), "numpy": (None, "not started"), "torch.functional": (gone, None)}
        time.sleep(0.1)                       # the interpreter has started and spins
        assert other.cpu_ticks() >= 0 and gone.cpu_ticks() == -1
        assert bench._Workers(log=None).wait_until_quiet("numpy") == 0.0      # no other worker: no wait
        started = time.monotonic()
        assert workers.wait_until_quiet("numba") < 0.2 and time.monotonic() - started < 0.2   # not its own
        waited = workers.wait_until_quiet("numpy")
        assert 0.2 <= waited < 0.95, waited     # until the spin ends, then QUIET_S (loose: a loaded machine)
        assert workers.wait_until_quiet("numpy") < 0.1              # quiet now
    finally:
        spinning.kill()
        spinning.wait()
    spinning = _process_that_spins(5)
    try:
        said = []
        workers = bench._Workers(log=said.append)
        other.process = SimpleNamespace(pid=spinning.pid)
        workers.started = {"numba": (other, None)}
        monkeypatch.setattr(bench, "QUIET_MAX_S", 0.3)
        time.sleep(0.1)
        assert 0.3 <= workers.wait_until_quiet("numpy") < 0.5
        assert said and "numba still busy after 0.3 s" in said[0]
    finally:
        spinning.kill()
        spinning.wait()
