"""The pytest plugin (harness/pytest_plugin.py): case files as pytest items, judged as `conform run` judges.

Each test runs pytest in a subprocess on a small suite (numpy and torch.functional) with the plugin loaded
by ``-p harness.pytest_plugin`` (an installed checkout also registers it through its pytest11 entry point).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from helpers import ROOT, conform, write

BACKENDS = "numpy,torch.functional"

SUITE = """
    op: conv2d
    defaults:
      kernel_size: 3
      data: {x: normal, w: normal, seed: 1}
    cases:
      - id: pt-pass
        input: [1, 2, 5, 5]
        out_channels: 2
        mode: both
        bias: true
      - id: pt-strict           # a zero tolerance no float16 kernel meets: value_mismatch everywhere
        input: [1, 16, 9, 9]
        out_channels: 4
        dtype: float16
        tolerance: {rtol: 0.0, atol: 0.0}
      - id: pt-dtypes
        input: [1, 2, 5, 5]
        out_channels: 2
        matrix:
          dtype: [float16, bfloat16]
"""

REGISTRY = """
    divergences:
      - id: PT-strict-torch
        backend: torch.functional
        cases: pt-strict
        verdict: value_mismatch
        reason: a zero tolerance no float16 kernel meets (test entry)
"""

CLAIMS = """
    claims:
      - id: not-a-case-file
"""

#: item id -> outcome, as junit.xml shows them
EXPECTED = {
    "pt-pass[numpy]": "passed", "pt-pass[torch.functional]": "passed",
    "pt-pass.grad_x[numpy]": "skipped", "pt-pass.grad_x[torch.functional]": "passed",
    "pt-pass.grad_w[numpy]": "skipped", "pt-pass.grad_w[torch.functional]": "passed",
    "pt-pass.grad_b[numpy]": "skipped", "pt-pass.grad_b[torch.functional]": "passed",
    "pt-strict[numpy]": "failed", "pt-strict[torch.functional]": "xfailed",
    "pt-dtypes[dtype=float16][numpy]": "passed", "pt-dtypes[dtype=float16][torch.functional]": "passed",
    "pt-dtypes[dtype=bfloat16][numpy]": "passed", "pt-dtypes[dtype=bfloat16][torch.functional]": "passed",
}
OUTCOME = {"pass": "passed", "xfail": "xfailed", "unsupported": "skipped", "skipped": "skipped"}


def pytest_run(cwd: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-p", "no:cacheprovider",
                           *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


def outcomes(junit: Path) -> dict[str, str]:
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            result[case.get("name")] = "failed"
        elif skipped is not None:
            result[case.get("name")] = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            result[case.get("name")] = "passed"
    return result


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """``suite/`` with one case file and the registry (not a case file)."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "suite").mkdir()
    write(root / "suite" / "basic.yaml", SUITE)
    write(root / "suite" / "known_divergences.yaml", REGISTRY)
    return root


@pytest.fixture(scope="module")
def full_run(suite):
    """One whole run (the nearest registry, reports written) and `conform run` of the same folder."""
    proc = pytest_run(suite, "suite", "--conform-backends", BACKENDS, "--junitxml", "j.xml", "--conform-out", "out",
                      "-rA")
    ran = conform("run", suite / "suite", "--backends", BACKENDS, "--out", suite / "conform-out", "--quiet")
    return proc, ran


def test_items_ids_and_outcomes(suite, full_run):
    proc, _ = full_run
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert outcomes(suite / "j.xml") == EXPECTED
    assert "1 failed, 9 passed, 3 skipped, 1 xfailed" in proc.stdout
    # conform's reason and the reproducer, which exists
    assert "value_mismatch: 100.00% of elements outside the bound" in proc.stdout
    assert "reproducer: out/repro/pt-strict/numpy/repro.py" in proc.stdout
    assert (suite / "out" / "repro" / "pt-strict" / "numpy" / "repro.py").is_file()
    assert "XFAIL suite/basic.yaml::pt-strict[torch.functional] - PT-strict-torch: a zero tolerance" in proc.stdout
    assert "unsupported: no gradient: NumPy has no autodiff" in proc.stdout


def test_same_counts_and_verdicts_as_conform_run(suite, full_run):
    proc, ran = full_run
    assert ran.returncode == 1, ran.stderr
    report = json.loads((suite / "conform-out" / "report.json").read_text())
    counted = Counter(OUTCOME.get(r["verdict"], "failed") for r in report["results"])
    assert counted == Counter(outcomes(suite / "j.xml").values())
    mine = json.loads((suite / "out" / "report.json").read_text())   # --conform-out: the same verdicts
    key = lambda r: (r["case"], r["backend"], r["gradient"], r["verdict"], r["reason"])   # noqa: E731
    assert [key(r) for r in mine["results"]] == [key(r) for r in report["results"]]
    assert mine["summary"] == report["summary"] and mine["gate"] == report["gate"]


def test_k_and_x_select_and_stop(suite):
    proc = pytest_run(suite, "suite", "--conform-backends", BACKENDS, "-k", "pt-pass and torch", "--junitxml", "k.xml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(outcomes(suite / "k.xml")) == {n for n in EXPECTED if n.startswith("pt-pass") and "torch" in n}
    proc = pytest_run(suite, "suite", "--conform-backends", BACKENDS, "-x", "--junitxml", "x.xml")
    assert proc.returncode == 1
    ran = outcomes(suite / "x.xml")
    assert list(ran)[-1] == "pt-strict[numpy]" and list(ran.values()).count("failed") == 1
    assert not any(n.startswith("pt-dtypes") for n in ran)   # stopped at the first failure


def test_explicit_registry(suite):
    proc = pytest_run(suite, "suite/basic.yaml", "--conform-backends", "torch.functional", "-k", "pt-strict",
                      "--conform-registry", os.devnull)
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout
    proc = pytest_run(suite, "suite", "--conform-registry", "missing.yaml")
    assert proc.returncode == 4 and "--conform-registry missing.yaml: no such file" in proc.stderr
    write(suite / "bad-registry.yaml", "divergences:\n  - id: X\n    backend: numpy\n")
    proc = pytest_run(suite, "suite", "--conform-registry", "bad-registry.yaml")
    assert proc.returncode == 4 and "bad-registry.yaml:2: " in proc.stderr, proc.stderr   # before any item runs


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed (make setup)")
def test_xdist_gives_the_same_results(suite, full_run):
    proc = pytest_run(suite, "suite", "--conform-backends", BACKENDS, "-n", "2", "--junitxml", "n.xml",
                      "--conform-out", "out-n")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert outcomes(suite / "n.xml") == EXPECTED   # no result lost or doubled
    report = json.loads((suite / "out-n" / "report.json").read_text())
    assert report["summary"] == json.loads((suite / "out" / "report.json").read_text())["summary"]


def test_bad_case_file_is_a_collection_error(tmp_path):
    write(tmp_path / "bad.yaml", """
        op: conv2d
        cases:
          - id: bad
            input: [1, 2, 5, 5]
            out_channels: 2
            kernel_size: 3
            stride: 0
    """)
    proc = pytest_run(tmp_path, "bad.yaml", "--conform-backends", "numpy")
    assert proc.returncode == 2
    assert "bad.yaml:7: stride" in proc.stdout, proc.stdout


def test_yaml_is_collected_only_under_paths_given(tmp_path):
    write(tmp_path / "cases.yaml", SUITE)
    proc = pytest_run(tmp_path, "--collect-only", "-q", "--conform-backends", "numpy")   # no path: the cwd
    assert proc.returncode == 5, proc.stdout   # no tests collected
    (tmp_path / "cases.yaml").rename(tmp_path / "claims.yaml")
    write(tmp_path / "claims.yaml", CLAIMS)   # a claim file is not a case file
    write(tmp_path / "ci.yml", "jobs: {test: {runs-on: ubuntu-latest}}\n")
    proc = pytest_run(tmp_path, tmp_path, "--collect-only", "-q", "--conform-backends", "numpy")
    assert proc.returncode == 5, proc.stdout
    proc = pytest_run(ROOT, "--collect-only", "-q", "--conform-backends", "numpy", "tests/bad_inputs",
                      "tests/data")
    assert proc.returncode == 5, proc.stdout   # tests/conftest.py: the repository's YAML is test data


def test_a_case_edited_after_collection_fails_its_items(tmp_path):
    """Items hold the index; the file's cases are rebuilt when its first item runs (Note [Case index])."""
    write(tmp_path / "edited.yaml", """
        op: conv2d
        defaults: {input: [1, 2, 5, 5], out_channels: 2, kernel_size: 3}
        cases:
          - id: kept
          - id: edited
            data: {x: normal, w: normal, seed: 1}
    """)
    write(tmp_path / "conftest.py", """
        from pathlib import Path

        def pytest_collection_finish(session):   # the user saves the file while the items start
            path = Path(__file__).with_name("edited.yaml")
            path.write_text(path.read_text().replace("seed: 1", "seed: 2"))
    """)
    proc = pytest_run(tmp_path, "edited.yaml", "--conform-backends", "numpy", "-rA")
    assert proc.returncode == 1, proc.stdout
    assert "PASSED edited.yaml::kept[numpy]" in proc.stdout
    assert "FAILED edited.yaml::edited[numpy]" in proc.stdout
    assert "edited.yaml changed after it was validated" in proc.stdout, proc.stdout
    assert "not run: 1 of its cases (edited)" in proc.stdout
