"""Backends in environments of their own (harness/envs.py, Note [Environments]), ``ID@VERSION``."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import envs, ipc
from harness.backends import registry, select, split_version

ROOT = Path(__file__).resolve().parents[1]
CONFORM = [sys.executable, "-m", "harness"]

needs_uv = pytest.mark.skipif(envs.uv_binary() is None, reason="uv is not installed (make setup installs it)")

#: MindSpore 2.10's extension was built against NumPy 1.x: under NumPy 2 its Tensor.__mul__ fails.
TENSOR_MUL = """
import numpy as np
import mindspore as ms
a = ms.Tensor(np.arange(4, dtype=np.float32).reshape(2, 2))
print("product", (a * a).asnumpy().ravel().tolist(), "numpy", np.__version__)
"""


def test_versioned_ids_select_the_same_adapter_at_a_release():
    known = registry()
    assert select("tf.nn@2.20.0,torch.functional", known) == ["tf.nn@2.20.0", "torch.functional"]
    assert select("tf@2.20.0", known) == [f"{b}@2.20.0" for b in known if b.startswith("tf.")]
    assert split_version("onnxruntime@1.31.1") == ("onnxruntime", "1.31.1")
    with pytest.raises(ValueError, match="own kernels have no versions"):
        select("numpy@2.0.0", known)
    with pytest.raises(ValueError, match="unknown backend"):
        select("tf.nn@", known)
    with pytest.raises(ValueError, match="is not a version"):
        select("onnxruntime@../../elsewhere", known)
    # tf.keras@VERSION moves Keras, not TensorFlow
    assert envs.target_of("tf.keras@3.14.0").requirements[:2] == ("keras==3.14.0", "tensorflow-cpu==2.21.0")


def test_a_version_replaces_the_pins_of_the_versioned_distributions_only():
    target = envs.Target(envs.ENVIRONMENTS["mindspore"], "2.9.0")
    assert target.requirements[:2] == ("mindspore==2.9.0", "numpy==1.26.4")
    assert not target.shared and target.pinned_version == "2.9.0"
    assert envs.Target(envs.ENVIRONMENTS["tensorflow"], None).shared
    assert not envs.Target(envs.ENVIRONMENTS["tensorflow"], "2.20.0").shared
    # Each version (and each change of pins) has a folder of its own.
    assert target.folder != envs.Target(envs.ENVIRONMENTS["mindspore"], None).folder


def test_message_headers_hold_no_numpy_objects():
    """A worker's NumPy may differ from ours: scalars go as Python numbers, arrays never in the header."""
    header = ipc._header({"stride": np.int64(2), "scale": np.float32(0.5), "flag": np.bool_(True)}, [])
    assert b"numpy" not in header
    assert pickle.loads(header) == ({"stride": 2, "scale": 0.5, "flag": True}, [])
    with pytest.raises(TypeError, match="frames"):
        ipc._header({"x": np.zeros(3)}, [])


@needs_uv
@pytest.mark.skipif(importlib.util.find_spec("mindspore") is None, reason="mindspore not installed")
def test_mindspore_tensor_mul_fails_in_the_shared_environment_and_works_in_its_own():
    shared = subprocess.run([sys.executable, "-c", TENSOR_MUL], capture_output=True, text=True, timeout=300)
    assert "product" not in shared.stdout
    assert "SystemError" in shared.stderr and "__mul__" in shared.stderr, shared.stderr[-2000:]

    own = envs.launch("mindspore.nn")
    assert own.python != sys.executable and own.label.startswith("mindspore-2.10.0-")
    done = subprocess.run([own.python, "-c", TENSOR_MUL], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "product [0.0, 1.0, 4.0, 9.0] numpy 1.26.4" in done.stdout


@needs_uv
@pytest.mark.skipif(importlib.util.find_spec("mindspore") is None, reason="mindspore not installed")
def test_a_run_records_each_backends_environment_and_version(tmp_path):
    case = tmp_path / "one.yaml"
    case.write_text("op: conv2d_transpose\ncases:\n  - id: one\n    input: [1, 2, 5, 5]\n"
                    "    out_channels: 3\n    kernel_size: 3\n    stride: 2\n")
    out = tmp_path / "out"
    done = subprocess.run([*CONFORM, "run", str(case), "--backends", "mindspore.nn,numpy", "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    backends = report["environment"]["backends"]
    assert backends["mindspore.nn"]["environment"].startswith("mindspore-2.10.0-")
    assert backends["numpy"]["environment"] == "shared"
    assert {r["backend"]: r["verdict"] for r in report["results"]} == {"mindspore.nn": "pass", "numpy": "pass"}


@needs_uv
def test_a_release_the_index_does_not_have_costs_its_results_not_the_run(tmp_path):
    case = tmp_path / "one.yaml"
    case.write_text("op: conv2d_transpose\ncases:\n  - id: one\n    input: [1, 1, 3, 3]\n"
                    "    out_channels: 1\n    kernel_size: 2\n")
    out = tmp_path / "out"
    done = subprocess.run([*CONFORM, "run", str(case), "--backends", "mindspore.nn@0.0.1,numpy", "--out",
                           str(out), "--quiet"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**__import__("os").environ, "CONFORM_HOME": str(tmp_path / "home")})
    report = json.loads((out / "report.json").read_text())
    by_backend = {r["backend"]: r for r in report["results"]}
    assert by_backend["numpy"]["verdict"] == "pass"
    # Asked for and not built: never a silent green (a CI job checking a release must not pass on nothing).
    assert by_backend["mindspore.nn@0.0.1"]["verdict"] == "crash"
    assert "could not be built" in by_backend["mindspore.nn@0.0.1"]["reason"]
    assert report["environment"]["backends"]["mindspore.nn@0.0.1"]["environment"] == "not built"
    assert not list((tmp_path / "home" / "envs").glob("mindspore-*")), "a failed build left a folder behind"
    assert done.returncode == 1, done.stderr[-2000:]


TWO_RELEASES = "onnxruntime@1.31.1,onnxruntime@1.32.0"


@needs_uv
@pytest.mark.skipif("onnxruntime" not in registry(), reason="no onnxruntime backend registered")
def test_one_surface_at_two_releases_runs_side_by_side(tmp_path):
    """The lightest pair that shows the two-environment path: ONNX Runtime wheels are ~20 MB."""
    case = tmp_path / "two.yaml"
    case.write_text("op: conv2d_transpose\ncases:\n"
                    "  - id: plain\n    input: [1, 3, 6, 5]\n    out_channels: 4\n    kernel_size: 3\n"
                    "    stride: 2\n    padding: 1\n    bias: true\n"
                    "  - id: same\n    input: [2, 2, 5, 5]\n    out_channels: 2\n    kernel_size: 4\n"
                    "    stride: 2\n    padding: same\n")
    out = tmp_path / "out"
    done = subprocess.run([*CONFORM, "run", str(case), "--backends", TWO_RELEASES, "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    backends = report["environment"]["backends"]
    assert {b: backends[b]["version"] for b in backends} == {"onnxruntime@1.31.1": "1.31.1",
                                                             "onnxruntime@1.32.0": "1.32.0"}
    assert backends["onnxruntime@1.31.1"]["environment"] != backends["onnxruntime@1.32.0"]["environment"]
    results = {(r["case"], r["backend"]): r for r in report["results"]}
    assert len(results) == 4 and {r["verdict"] for r in results.values()} == {"pass"}
    for (case_id, backend), record in results.items():
        other = "onnxruntime@1.32.0" if backend.endswith("1.31.1") else "onnxruntime@1.31.1"
        assert record["backend_version"] == backend.split("@")[1]
        assert set(record["version_delta"]) == {other} and record["version_delta"][other] >= 0
    assert "onnxruntime@1.31.1 -> onnxruntime@1.32.0: 0 worse, 0 better" in done.stdout
    between = subprocess.run([*CONFORM, "diff", str(out / "report.json"), "--between", *TWO_RELEASES.split(",")],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert between.returncode == 0 and "0 worse" in between.stdout, between.stdout + between.stderr


SURFACES = ("torch.nn", "tf.keras", "mindspore.ops", "jax.lax", "onnxruntime")


def test_conform_backends_lists_every_surface_with_its_environment_and_version():
    done = subprocess.run([*CONFORM, "backends"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    for surface in SURFACES:
        assert surface in rows, done.stdout
    where = {"torch.nn": "shared", "tf.keras": "shared", "mindspore.ops": "mindspore-",
             "jax.lax": "jax-", "onnxruntime": "onnxruntime-"}
    for surface, environment in where.items():
        columns = rows[surface].split()
        assert columns[3].startswith(environment), rows[surface]
        if envs.uv_binary() is not None:
            assert rows[surface].rstrip().endswith("available"), rows[surface]


@pytest.mark.parametrize("name", [n for n, e in envs.ENVIRONMENTS.items() if e.locked])
def test_a_locked_environment_pins_every_distribution_it_declares(name):
    """The lock is a freeze of a build from the declaration: the declared pins must be in it, unchanged."""
    environment = envs.ENVIRONMENTS[name]
    normal = {r.lower().replace("_", "-") for r in environment.locked}
    assert all("==" in r for r in environment.locked)
    for requirement in (*environment.requirements, *envs.WORKER_REQUIREMENTS):
        assert requirement.lower().replace("_", "-") in normal, requirement
    assert envs.Target(environment, None).requirements == environment.locked


def test_prune_removes_only_environments_the_listed_backends_do_not_use(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORM_HOME", str(tmp_path))
    used = envs.target_of("onnxruntime").folder
    old = envs.target_of("onnxruntime@1.31.1").folder
    for folder in (used, old, envs.home() / "_harness" / "abc"):
        (folder / "bin").mkdir(parents=True)
    (envs.home() / f".{old.name}.lock").write_text("")
    removed = envs.prune(["onnxruntime", "numpy"])
    assert sorted(p.name for p in removed) == sorted([old.name, f".{old.name}.lock"])
    assert used.is_dir() and (envs.home() / "_harness").is_dir() and not old.exists()


def test_a_compile_cache_past_its_budget_loses_its_least_recently_used_entries(tmp_path):
    """``envs.prune_cache``: under the budget nothing goes; past it, the entries used longest ago go first,
    until a quarter of the budget is free (so that pruning is rare); folders in it are left alone."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "sub").mkdir()
    for age in range(10):                           # entry-0 used most recently, entry-9 longest ago
        entry = cache / f"entry-{age}"
        entry.write_bytes(b"x" * 100)
        used = 1_700_000_000 - 3600 * age
        os.utime(entry, (used, used))
    assert envs.prune_cache(cache, max_bytes=1000) == 0 and len(list(cache.iterdir())) == 11
    assert envs.prune_cache(cache, max_bytes=800) == 400          # down to 600 = 0.75 * 800
    assert sorted(p.name for p in cache.iterdir()) == ["entry-0", "entry-1", "entry-2", "entry-3", "entry-4",
                                                        "entry-5", "sub"]
    assert envs.prune_cache(tmp_path / "missing", max_bytes=1) == 0
