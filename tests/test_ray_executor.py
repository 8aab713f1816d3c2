"""The Ray executor (``conform run --executor ray``) gives the local executor's verdicts, faults included.

Real runs on a real local Ray instance: the same suite (a few of cases/'s
dtype cases, one of them forward and backward, on numpy, torch.functional and
jax.lax, which runs in its own environment; and the test-only ``faulty``
backend of tests/test_reliability.py, which aborts, segfaults and hangs on
chosen cases) through both executors, compared per (case, backend, gradient). Then the
failures only Ray has: an actor killed mid-call, and one that stops answering.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import threading

import pytest
from helpers import ROOT, conform, start_conform
from test_reliability import FAULTY, case_file, env_with_faulty

from harness import backends, cpu, envs

# Every test here starts Ray: under pytest-xdist they share one worker (``--dist loadgroup``), never two
# local Ray instances at once.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture
def fresh_registry():
    """Re-read the backend registry (entry points) now and after the test, which changes sys.path."""
    yield backends.registry.cache_clear
    backends.registry.cache_clear()


needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (the optional extra `ray`)")
FAULTS = ["ok-1-fault", "abort-1-fault", "ok-2-fault", "hang-1-fault", "segfault-1-fault", "raise-1-fault",
          "ok-3-fault"]


def _verdicts(out) -> tuple[dict, dict]:
    report = json.loads((out / "report.json").read_text())
    return {(r["case"], r["backend"], r["gradient"]): r for r in report["results"]}, report["environment"]


@needs_ray
@pytest.mark.skipif(envs.uv_binary() is None, reason="uv is not installed: jax.lax needs its own environment")
def test_a_ray_run_gives_the_local_verdicts_and_a_crash_costs_one_result(tmp_path):
    faults = case_file(tmp_path / "faults.yaml", FAULTS)
    # Forward and backward (F11's bfloat16 gradient is an xfail of torch), and the faulty backend's cases.
    selection = ["-k", "bfloat16-single-column*", "-k", "dtype?dtype=float32,stride=2*", "-k", "*-fault"]
    # A timeout that a fresh worker's first call (imports, the oracle) meets on a loaded machine: with 8 s, the
    # Ray run's first call after the segfault timed out once in CI (two runs, Ray and pytest-xdist on 2 cores).
    common = [ROOT / "cases" / "conv2d_transpose" / "dtypes.yaml", faults, *selection,
              "--backends", "numpy,torch.functional,jax.lax,faulty", "--timeout", "20", "--quiet"]
    # Both at once: the hang case waits out its timeout in each.
    runs = {name: start_conform("run", *common, "--executor", name, "--out", tmp_path / name,
                                env=env_with_faulty()) for name in ("local", "ray")}
    done = {name: proc.communicate(timeout=600) for name, proc in runs.items()}
    for name, proc in runs.items():
        assert proc.returncode == 1, done[name][1][-2000:]
        assert "Traceback" not in done[name][1] and "WARNING" not in done[name][1], done[name][1][-2000:]
    by_local, env_local = _verdicts(tmp_path / "local")
    by_ray, env_ray = _verdicts(tmp_path / "ray")
    assert env_local["executor"] == {"name": "local"}
    assert env_ray["executor"]["name"] == "ray" and env_ray["executor"]["nodes"] == 1
    assert by_ray.keys() == by_local.keys()
    assert {k: r["verdict"] for k, r in by_ray.items()} == {k: r["verdict"] for k, r in by_local.items()}
    # The frameworks really answered, forward and backward, the jax one from its own environment.
    single = "bfloat16-single-column-input-gradient"
    assert [by_ray[(single, "jax.lax", g)]["verdict"] for g in (None, "x", "w")] == ["pass"] * 3
    # F11, as locally, where oneDNN emulates bfloat16; a CPU with AVX512-BF16 runs another oneDNN kernel,
    # which got it right on an AMD Zen 5 (F11 is intermittent: a pass is no alarm).
    f11 = by_ray[(single, "torch.functional", "x")]["verdict"]
    assert f11 in (("xfail", "pass") if "avx512_bf16" in cpu.flags() else ("xfail",)), f11
    assert env_ray["backends"]["jax.lax"]["environment"] != "shared"
    # Each fault cost exactly its own result, with the local executor's reason; the calls after it passed.
    faulty = {case.removesuffix("-fault"): by_ray[(case, "faulty", None)] for case in FAULTS}
    assert faulty["abort-1"]["verdict"] == "crash" and "SIGABRT" in faulty["abort-1"]["reason"]
    assert faulty["segfault-1"]["verdict"] == "crash" and "SIGSEGV" in faulty["segfault-1"]["reason"]
    assert faulty["hang-1"]["verdict"] == "timeout"
    assert all(faulty[case]["verdict"] == "pass" for case in faulty if case.startswith("ok"))
    assert {k: r["reason"] for k, r in by_ray.items() if k[1] == "faulty"} == \
        {k: r["reason"] for k, r in by_local.items() if k[1] == "faulty"}


def _calls(tmp_path) -> dict:
    """Real calls of the faulty backend's cases, by id (operands and all)."""
    from harness.cases import load_suite
    from harness.runner import prepare
    cases = load_suite([str(case_file(tmp_path / "faults.yaml", ["hang-1", "raise-1"]))])
    return {case.id: prepare(case)[0] for case in cases}


@needs_ray
def test_an_actor_that_dies_or_stops_answering_costs_one_result(tmp_path, monkeypatch, fresh_registry):
    import ray

    from harness import ray_executor
    from harness.worker import Crash, Timeout

    monkeypatch.setenv("PYTHONPATH", env_with_faulty()["PYTHONPATH"])   # the actors import the faulty backend
    monkeypatch.syspath_prepend(str(FAULTY))
    fresh_registry()   # the faulty backend's entry point is on the path only now
    monkeypatch.setattr(ray_executor, "GRACE_S", 1.0)
    calls = _calls(tmp_path)
    with ray_executor.RayExecutor(jobs=1, backends=("faulty",)) as executor:
        worker = executor.worker_for("faulty")
        assert worker.start(), worker.setup_error
        first = ray.get(worker.actor.ping.remote())
        # Killed while its worker is busy (a node lost, the OOM killer): a crash naming Ray's reason.
        threading.Timer(1.0, os.kill, (first, signal.SIGKILL)).start()
        died = worker.call(calls["hang-1"], 30)
        assert isinstance(died, Crash) and "ActorDiedError" in died.reason, died
        # The next call gets a new actor.
        answer = worker.call(calls["raise-1"], 30)
        assert answer.status == "error" and answer.error_message == "faulty backend refuses this call"
        second = ray.get(worker.actor.ping.remote())
        assert second != first
        # An actor that stops answering (SIGSTOP) is given GRACE_S past the call's deadline, then killed.
        threading.Timer(0.5, os.kill, (second, signal.SIGSTOP)).start()
        late = worker.call(calls["hang-1"], 2)
        assert isinstance(late, Timeout), late
        assert worker.actor is None
        assert worker.call(calls["raise-1"], 30).status == "error"
        worker.stop()


def test_executor_usage_errors_exit_2_before_anything_runs(tmp_path):
    cases = ROOT / "cases" / "conv2d_transpose" / "mapping_page.yaml"
    unknown = conform("run", cases, "--executor", "dask", "--out", tmp_path / "a")
    assert unknown.returncode == 2 and "invalid choice: 'dask'" in unknown.stderr
    stray = conform("run", cases, "--address", "ray://head:10001", "--out", tmp_path / "b")
    assert stray.returncode == 2 and "--address names a Ray cluster: it needs --executor ray" in stray.stderr
    if importlib.util.find_spec("ray") is not None:   # a cluster that does not answer: at once, not Ray's retries
        gone = conform("run", cases, "--executor", "ray", "--address", "127.0.0.1:1", "--out", tmp_path / "d")
        assert gone.returncode == 2 and "cannot connect to the Ray cluster at 127.0.0.1:1" in gone.stderr
    # Ray absent: a package named ray that cannot be imported stands in for it.
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    missing = conform("run", cases, "--executor", "ray", "--out", tmp_path / "c", env=env)
    assert missing.returncode == 2, missing.stderr
    assert "--executor ray needs Ray" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "c" / "report.json").exists()
