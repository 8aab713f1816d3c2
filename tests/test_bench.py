"""``conform bench`` (harness/bench.py): what the parent does while a worker times its calls, and the warm-up."""

from __future__ import annotations

import json
import os
import time

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


def test_backends_take_turns_on_each_case_and_rounds_share_the_timed_calls(tmp_path, monkeypatch):
    """Note [Turns]: every worker starts once; on each case every backend takes a turn per round, each round
    one backend further down the list, timing its share of the calls; a row's median is over every round's."""
    cases = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1:4:2]       # b2, and b4 (grouped)
    asked, starts, real = [], [], bench.worker_for

    def spied(bid, **kw):
        starts.append(bid)
        worker = real(bid, **kw)
        timed = worker.bench
        worker.bench = lambda call, warmup, repeats, *rest: asked.append((call.case_id, bid, repeats)) or \
            timed(call, warmup, repeats, *rest)
        return worker
    monkeypatch.setattr(bench, "worker_for", spied)
    result = bench.run_bench(cases, ["numpy", "numba"], tmp_path, warmup=1, repeats=5, log=lambda line: None,
                             warmup_s=0.0, rounds=3)
    assert starts == ["numpy", "numba"]
    b2, b4 = (case.id for case in cases)
    assert asked == [(b2, "numpy", 2), (b2, "numba", 2), (b2, "numba", 2), (b2, "numpy", 2), (b2, "numpy", 1),
                     (b2, "numba", 1),
                     (b4, "numpy", 2), (b4, "numba", 2), (b4, "numba", 2), (b4, "numpy", 2), (b4, "numpy", 1),
                     (b4, "numba", 1)]
    assert [(row["backend"], row["status"], row["repeats"]) for row in result["results"]] == \
        [("numpy", "ok", 5)] * 2 + [("numba", "ok", 5)] * 2
    assert result["rounds"] == 3
    asked.clear()
    bench.run_bench(cases[:1], ["numpy", "numba"], tmp_path, warmup=1, repeats=1, log=lambda line: None,
                    warmup_s=0.0)
    assert asked == [(b2, "numpy", 1), (b2, "numba", 1)]   # one timed call: one round, whatever --rounds says


def test_a_backend_that_fails_is_not_tried_again_and_later_failures_keep_the_timings(tmp_path, monkeypatch):
    from harness.worker import Crash
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1]
    turns, real = [], bench.worker_for

    def failing_from(first_failing_turn):
        def spied(bid, **kw):
            worker = real(bid, **kw)
            timed = worker.bench

            def turn(*args):
                turns.append(bid)
                return Crash("killed by signal 9") if len(turns) >= first_failing_turn else timed(*args)
            worker.bench = turn
            return worker
        return spied
    monkeypatch.setattr(bench, "worker_for", failing_from(1))
    [row] = bench.run_bench([case], ["numpy"], tmp_path, warmup=1, repeats=3, log=lambda line: None,
                            warmup_s=0.0, rounds=3)["results"]
    assert turns == ["numpy"] and row["status"] == "failed" and "signal 9" in row["reason"]
    turns.clear()
    monkeypatch.setattr(bench, "worker_for", failing_from(2))
    [row] = bench.run_bench([case], ["numpy"], tmp_path, warmup=1, repeats=3, log=lambda line: None,
                            warmup_s=0.0, rounds=3)["results"]
    assert turns == ["numpy"] * 3 and (row["status"], row["repeats"]) == ("ok", 1)


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
        workers.started = {"numba": (other, None), "numpy": (None, "not started")}
        time.sleep(0.1)                       # the interpreter has started and spins
        assert other.cpu_ticks() >= 0
        assert workers.wait_until_quiet("numba") < 0.05            # its own worker is not waited for
        waited = workers.wait_until_quiet("numpy")
        assert 0.4 <= waited < 0.9, waited                          # until the spin ends, then QUIET_S
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
        assert said and "still busy after 0.3 s" in said[0]
    finally:
        spinning.kill()
        spinning.wait()
