"""Every wait has a deadline: stopped workers, signals during clean-up, and option values.

A real PyTorch worker is frozen with SIGSTOP while the parent is delivering
an 8.7 MB request to it (the parent used to block in ``write()`` forever), and
real runs are interrupted with SIGTERM and with two SIGINTs in a row.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import textwrap
import time
from pathlib import Path

import pytest
from helpers import conform, start_conform, wait_for_results, write

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
needs_psutil = pytest.mark.skipif(importlib.util.find_spec("psutil") is None, reason="psutil not installed")


def big_cases(path: Path, count: int) -> Path:
    """One small case (the worker is up and answering), then ``count`` cases whose request is 8.7 MB."""
    body = "".join(f"  - id: big-{i}\n" for i in range(count))
    return write(path, textwrap.dedent("""
        op: conv2d_transpose
        defaults: {input: [4, 64, 64, 64], out_channels: 64, kernel_size: 3, stride: 2, padding: 1}
        cases:
          - id: a-small
            input: [1, 2, 5, 5]
            out_channels: 2
        """) + body)


def framework_worker(pid: int, library: str):
    """The child of ``pid`` that has ``library`` mapped (the worker of that framework)."""
    import psutil
    for child in psutil.Process(pid).children():
        try:
            if library in Path(f"/proc/{child.pid}/maps").read_text():
                return child
        except OSError:
            continue
    raise AssertionError(f"no worker with {library} loaded")


def stop_torch_worker_after_first_case(proc, out: Path):
    """Freeze the torch worker once it has answered the small case; the big requests follow."""
    wait_for_results(out / "results.jsonl", 2, timeout_s=120)
    assert proc.poll() is None, proc.communicate()
    worker = framework_worker(proc.pid, "libtorch")
    worker.send_signal(signal.SIGSTOP)
    return worker


@needs_torch
@needs_psutil
def test_a_stopped_worker_costs_one_timeout_and_the_run_completes(tmp_path):
    import psutil
    out = tmp_path / "out"
    proc = start_conform("run", big_cases(tmp_path / "big.yaml", 3), "--backends", "torch.functional,numpy",
                         "--timeout", "20", "--out", out, "--quiet")
    worker = stop_torch_worker_after_first_case(proc, out)
    _, stderr = proc.communicate(timeout=300)   # before deadlines on sends: never returned
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    report = json.loads((out / "report.json").read_text())
    assert not report["incomplete"]
    got = {(r["case"], r["backend"]): r["verdict"] for r in report["results"]}
    assert len(got) == 8, got                    # every result present, none doubled
    torch = [got[(case, "torch.functional")] for case in ("big-0", "big-1", "big-2")]
    assert torch.count("timeout") == 1 and torch.count("pass") == 2, got
    assert all(v == "pass" for (case, backend), v in got.items() if backend == "numpy")
    assert not psutil.pid_exists(worker.pid) or worker.status() == psutil.STATUS_ZOMBIE


@needs_torch
@needs_psutil
def test_sigterm_ends_a_run_with_a_stopped_worker_promptly(tmp_path):
    out = tmp_path / "out"
    proc = start_conform("run", big_cases(tmp_path / "big.yaml", 3), "--backends", "torch.functional,numpy",
                         "--timeout", "600", "--out", out, "--quiet")
    stop_torch_worker_after_first_case(proc, out)
    time.sleep(1)                                # let the parent block on the frozen worker
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)     # the bound; it used to hang forever
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["incomplete"] is True and report["gate"]["passed"] is False


def test_a_double_sigint_still_leaves_a_valid_incomplete_report(tmp_path):
    body = "".join(f"  - id: case-{i}\n" for i in range(80))
    cases = write(tmp_path / "many.yaml", textwrap.dedent("""
        op: conv2d_transpose
        defaults: {input: [8, 32, 24, 24], out_channels: 2, kernel_size: 3, stride: 2, padding: 1}
        cases:
        """) + body)
    out = tmp_path / "out"
    first = conform("run", cases, "--backends", "numpy", "-k", "case-79", "--out", out, "--quiet")
    assert first.returncode == 0 and not json.loads((out / "report.json").read_text())["incomplete"]

    proc = start_conform("run", cases, "--backends", "numpy", "--out", out, "--quiet")
    wait_for_results(out / "results.jsonl", 5, timeout_s=120)
    for _ in range(6):                           # the later ones land in the clean-up or the report writers
        proc.send_signal(signal.SIGINT)
        time.sleep(0.005)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["incomplete"] is True and report["gate"]["passed"] is False
    assert 5 <= len(report["results"]) < 80


@pytest.mark.parametrize("option", [
    ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "0"], ["--timeout", "-5"],
    ["--max-memory", "0.0000001"], ["--max-memory", "0"], ["--max-memory", "12XB"],
    ["--jobs", "0"], ["--jobs", "9" * 5000],
])
def test_option_values_out_of_range_are_usage_errors(tmp_path, option):
    proc = conform("run", "cases/conv2d_transpose/mapping_page.yaml", *option, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert f"argument {option[0]}:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def peak_rss_while_running(proc) -> int:
    """The process's peak resident memory: psutil's RSS sampled, and the kernel's own high-water mark."""
    import psutil
    process, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (psutil.Error, OSError):
            break
        time.sleep(0.005)
    return peak


@needs_psutil
def test_the_parent_stays_within_the_memory_budget_on_a_case_near_it(tmp_path):
    """One case passes (agreement holds both answers), one fails (its reproducer builds inputs.npz)."""
    from harness import ops
    from harness.memory import Budget
    from test_reliability import env_with_faulty

    env = env_with_faulty()
    op, limit = ops.get("conv2d_transpose"), 2 << 30
    budget = Budget(limit, 512 << 20, 2)   # as the run computes it for numpy + faulty (a plugin: default baseline)
    batch = max(n for n in range(1, 64) if budget.need(op, op.Params(
        input=[n, 32, 96, 96], out_channels=32, kernel_size=3, stride=2, padding=1), "float64") <= limit)
    need = budget.need(op, op.Params(input=[batch, 32, 96, 96], out_channels=32, kernel_size=3, stride=2,
                                     padding=1), "float64")
    assert need > 0.85 * limit                           # the case really is near the budget
    cases = write(tmp_path / "near.yaml", f"""
        op: conv2d_transpose
        defaults: {{input: [{batch}, 32, 96, 96], out_channels: 32, kernel_size: 3, stride: 2, padding: 1,
                    dtype: float64}}
        cases:
          - id: near-budget
          - id: wrong-shape-near-budget
        """)
    proc = start_conform("run", cases, "--backends", "numpy,faulty", "--max-memory", "2GiB",
                         "--out", tmp_path / "out", "--quiet", env=env)
    peak = peak_rss_while_running(proc)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr                  # the wrong shape fails the gate
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    verdicts = {(r["case"], r["backend"]): r["verdict"] for r in report["results"]}
    assert verdicts == {("near-budget", "numpy"): "pass", ("near-budget", "faulty"): "pass",
                        ("wrong-shape-near-budget", "numpy"): "pass",
                        ("wrong-shape-near-budget", "faulty"): "shape_mismatch"}
    assert (tmp_path / "out" / "repro" / "wrong-shape-near-budget" / "faulty" / "inputs.npz").exists()
    print(f"estimate {need / 2**30:.3f} GiB, parent peak {peak / 2**30:.3f} GiB, budget {limit / 2**30:.0f} GiB")
    assert 0 < peak <= limit


@needs_psutil
def test_a_worker_stopped_while_starting_is_given_up_once_it_stops_making_progress(monkeypatch):
    """Starting has a long deadline (a framework import on a busy machine), but a worker frozen before it is
    ready uses no CPU at all: it is given up after STARTUP_STALL_S without progress, not after the full
    STARTUP_TIMEOUT_S (300 s, during which even the run's --timeout did not apply)."""
    import os
    import threading

    import psutil

    from harness import worker as worker_module
    monkeypatch.setattr(worker_module, "STARTUP_STALL_S", 1.0)
    stopped = []

    def freeze_the_new_child():
        me = psutil.Process(os.getpid())
        deadline = time.monotonic() + 30
        while not stopped and time.monotonic() < deadline:
            for child in me.children():
                if child.pid not in (c.pid for c in stopped) and "harness.worker" in child.cmdline():
                    child.send_signal(signal.SIGSTOP)   # long before it has imported anything
                    stopped.append(child)
            time.sleep(0.002)

    watcher = threading.Thread(target=freeze_the_new_child)
    watcher.start()
    worker = worker_module.Worker("numpy", "harness.backends.numpy_ref:NumpyBackend")
    started = time.monotonic()
    assert not worker.start()
    elapsed = time.monotonic() - started
    watcher.join()
    assert stopped and "made no progress" in worker.setup_error, worker.setup_error
    assert elapsed < 30
    assert not stopped[0].is_running() or stopped[0].status() == psutil.STATUS_ZOMBIE


def test_stopping_every_worker_goes_on_past_one_that_fails_and_kills_when_interrupted():
    """``stop_all`` (the runner's, the bench's and the pytest plugin's end): a worker whose stop raises does not
    keep the next one running, and the error is raised once both are stopped; interrupted, every worker's call
    in flight is cancelled and the process killed, not asked to finish."""
    from harness.worker import Worker, stop_all

    first, second = (Worker("numpy", "harness.backends.numpy_ref:NumpyBackend") for _ in range(2))
    assert first.start() and second.start()
    processes = [first.process, second.process]
    real_stop = first.stop

    def failing_stop(kill=False):
        real_stop(kill)
        raise OSError("the pipe broke while stopping")
    first.stop = failing_stop
    with pytest.raises(OSError, match="pipe broke"):
        stop_all([first, second])
    assert [p.is_alive() for p in processes] == [False, False]
    assert [p.popen.returncode for p in processes] == [0, 0]        # asked to stop, and they did

    assert second.start()
    restarted = second.process
    stop_all([second], kill=True)
    assert second._cancelled.is_set() and restarted.popen.returncode == -signal.SIGKILL
