"""Reliability: crashes, hangs, memory blow-ups, killed workers and interrupted runs lose nothing.

Faults are real: a test-only backend registered through the ``conform.backends``
entry-point group aborts, segfaults, hangs, leaks memory or returns a wrong
shape on chosen cases; a real PyTorch worker is killed from outside; a real
run is interrupted with SIGINT and resumed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest
from helpers import ROOT, conform, start_conform, wait_for_results

FAULTY = ROOT / "tests" / "support" / "faulty"


def env_with_faulty():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAULTY), env.get("PYTHONPATH")]))
    return env


def case_file(path: Path, ids: list[str], input_=(1, 2, 5, 5)) -> Path:
    body = "\n".join(f"  - id: {i}" for i in ids)
    path.write_text(textwrap.dedent(f"""\
        op: conv2d_transpose
        defaults: {{input: {list(input_)}, out_channels: 2, kernel_size: 3, stride: 2, padding: 1}}
        cases:
        """) + body + "\n")
    return path


def test_every_fault_costs_exactly_one_result_and_the_run_completes(tmp_path):
    ids = ["ok-1", "abort-1", "ok-2", "segfault-1", "ok-3", "hang-1", "ok-4", "leak-1", "ok-5",
           "wrong-shape-1", "ok-6", "exit-1", "raise-1", "ok-7"]
    cases = case_file(tmp_path / "faults.yaml", ids)
    started = time.monotonic()
    proc = conform("run", cases, "--backends", "faulty,numpy", "--timeout", "10", "--max-memory", "1GiB",
                   "--out", tmp_path / "out", "--quiet", env=env_with_faulty())
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert not report["incomplete"]
    got = {(r["case"], r["backend"]): r for r in report["results"]}
    assert len(got) == len(report["results"]) == len(ids) * 2          # nothing lost, nothing doubled
    assert all(got[(i, "numpy")]["verdict"] == "pass" for i in ids)
    faulty = {i: got[(i, "faulty")] for i in ids}
    assert all(faulty[i]["verdict"] == "pass" for i in ids if i.startswith("ok")), faulty
    assert faulty["abort-1"]["verdict"] == "crash" and "SIGABRT" in faulty["abort-1"]["reason"]
    assert faulty["segfault-1"]["verdict"] == "crash" and "SIGSEGV" in faulty["segfault-1"]["reason"]
    assert faulty["exit-1"]["verdict"] == "crash" and "exited with code 3" in faulty["exit-1"]["reason"]
    assert faulty["hang-1"]["verdict"] == "timeout"
    assert faulty["leak-1"]["verdict"] == "crash" and "memory budget" in faulty["leak-1"]["reason"]
    assert faulty["wrong-shape-1"]["verdict"] == "shape_mismatch"
    assert faulty["raise-1"]["verdict"] == "unexpected_error"
    assert faulty["raise-1"]["error"]["message"] == "faulty backend refuses this call"
    assert elapsed < 120
    junk = [line for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines() if line.strip()]
    assert len(junk) == len(ids) * 2


def test_a_call_that_damages_its_worker_does_not_cost_the_next_case_its_result(tmp_path):
    # Note [Damaged workers]: "damage-1" answers right but leaves the worker to abort on its next call, as a
    # heap overflow (TensorFlow's F10) is found by glibc in a later, innocent call. That call is retried in a
    # fresh worker, which answers it; a call that kills a fresh worker too stays a crash.
    ids = ["ok-1", "damage-1", "ok-2", "ok-3", "abort-1", "ok-4"]
    cases = case_file(tmp_path / "damage.yaml", ids)
    proc = conform("run", cases, "--backends", "faulty", "--out", tmp_path / "out", "--quiet",
                   env=env_with_faulty())
    assert proc.returncode == 1, proc.stderr
    faulty = {r["case"]: r for r in json.loads((tmp_path / "out" / "report.json").read_text())["results"]}
    assert [faulty[i]["verdict"] for i in ids] == ["pass", "pass", "pass", "pass", "crash", "pass"], faulty
    retried = [i for i in ids if any("a fresh worker answered it" in note for note in faulty[i]["notes"])]
    assert retried == ["ok-2"], faulty
    assert "died on this one (worker killed by signal SIGABRT" in faulty["ok-2"]["notes"][0]
    assert "answered 2 calls" in faulty["ok-2"]["notes"][0]
    assert "SIGABRT" in faulty["abort-1"]["reason"] and "a fresh worker died on it too" in faulty["abort-1"]["reason"]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.skipif(importlib.util.find_spec("psutil") is None, reason="psutil not installed")
def test_a_real_framework_worker_killed_mid_run_costs_at_most_one_result(tmp_path):
    import psutil
    ids = [f"case-{i}" for i in range(60)]
    cases = case_file(tmp_path / "many.yaml", ids, input_=(8, 32, 24, 24))
    out = tmp_path / "out"
    proc = start_conform("run", cases, "--backends", "torch.functional", "--out", out, "--quiet")
    wait_for_results(out / "results.jsonl", 10)
    workers = [c for c in psutil.Process(proc.pid).children()
               if "harness.worker" in c.cmdline()]
    assert workers, "no torch worker found"
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=600)
    report = json.loads((out / "report.json").read_text())
    verdicts = [r["verdict"] for r in report["results"]]
    assert len(verdicts) == 60 and not report["incomplete"]
    assert verdicts.count("crash") <= 1 and verdicts.count("pass") >= 59, verdicts
    crashed = [r for r in report["results"] if r["verdict"] == "crash"]
    assert all("SIGKILL" in r["reason"] for r in crashed)
    assert proc.returncode == (1 if crashed else 0), stderr


def test_sigint_leaves_a_valid_incomplete_report_and_resume_completes_it(tmp_path):
    ids = [f"case-{i}" for i in range(80)]
    cases = case_file(tmp_path / "many.yaml", ids, input_=(8, 32, 24, 24))
    out = tmp_path / "out"
    proc = start_conform("run", cases, "--backends", "numpy", "--out", out, "--quiet")
    journal = out / "results.jsonl"
    wait_for_results(journal, 10)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    partial = json.loads((out / "report.json").read_text())
    assert partial["incomplete"] is True
    finished = len(partial["results"])
    assert 10 <= finished < 80
    assert not list(out.glob(".report.json.*"))      # no temporary left behind

    resumed = conform("run", cases, "--backends", "numpy", "--out", out, "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    full = json.loads((out / "report.json").read_text())
    assert not full["incomplete"]
    assert [r["case"] for r in full["results"]] == ids
    # Finished results were kept, not re-run: the journal holds each pair exactly once.
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    assert sorted(r["case"] for r in lines) == sorted(ids)
    assert full["results"][:finished] == partial["results"]
    assert full["timing"]["results"] == 80 - finished     # the rate counts this run's results, not the kept ones


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_the_same_command_twice_gives_the_same_report_but_for_timings(tmp_path):
    def normalised(out):
        report = json.loads((out / "report.json").read_text())
        for key in ("created", "duration_s", "timing"):
            report.pop(key)
        for r in report["results"]:
            r.pop("duration_ms")
        return report
    args = ["run", "cases/conv2d_transpose/mapping_page.yaml", "--backends", "numpy,torch.functional", "--quiet"]
    first = conform(*args, "--out", tmp_path / "a")
    second = conform(*args, "--out", tmp_path / "b")
    assert first.returncode == second.returncode == 0
    assert normalised(tmp_path / "a") == normalised(tmp_path / "b")


def test_an_installed_backend_that_cannot_start_fails_the_gate(tmp_path):
    cases = case_file(tmp_path / "two.yaml", ["ok-1", "ok-2"])
    proc = conform("run", cases, "--backends", "broken,numpy", "--out", tmp_path / "out", "--quiet",
                   env=env_with_faulty())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    broken = [r for r in report["results"] if r["backend"] == "broken"]
    assert [r["verdict"] for r in broken] == ["crash", "crash"]
    assert "libbroken.so" in broken[0]["reason"]
    assert report["environment"]["backends"]["broken"]["available"] is False


@pytest.mark.skipif(importlib.util.find_spec("mindspore") is None, reason="mindspore not installed")
def test_resume_judges_kept_results_against_the_current_registry(tmp_path):
    cases = tmp_path / "f2.yaml"
    cases.write_text("op: conv2d_transpose\ncases:\n  - id: f2\n    input: [1, 2, 4, 4]\n    out_channels: 2\n"
                     "    kernel_size: 3\n    stride: 2\n    padding: 1\n    output_padding: 1\n")
    registry = tmp_path / "known.yaml"
    registry.write_text("divergences:\n  - id: F2\n    cases: f2\n    backend: mindspore.nn\n"
                        "    verdict: value_mismatch\n    reason: MindSpore fills output_padding rows with zeros\n")
    out = tmp_path / "out"
    first = conform("run", cases, "--backends", "mindspore.nn", "--registry", registry, "--out", out, "--quiet")
    assert first.returncode == 0
    registry.write_text("divergences: []\n")           # the entry is removed: the failure must show again
    again = conform("run", cases, "--backends", "mindspore.nn", "--registry", registry, "--out", out, "--quiet",
                    "--resume")
    (result,) = json.loads((out / "report.json").read_text())["results"]
    assert result["verdict"] == "value_mismatch" and "divergence" not in result
    assert again.returncode == 1
