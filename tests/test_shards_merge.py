"""``--shard K/N`` and ``conform merge`` (issue 16): three shards merged are the run of the whole suite.

The shards are run by the very command lines of ``docs/ci/``'s workflows
(read from the YAML, the matrix variable substituted), with a ``conform`` on
PATH that is this checkout. Real backends: numpy, torch.functional and torch.nn (the claims' sides).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cases import load_suite
from harness.report.gradients import result_key
from harness.shards import Sharding, split
from tests.helpers import ROOT, conform, write

pytest.importorskip("torch", reason="the shards run torch.functional")

BACKENDS = "numpy,torch.functional,torch.nn"
GITHUB = ROOT / "docs/ci/github-actions.yml"
GITLAB = ROOT / "docs/ci/gitlab-ci.yml"


def _suite(folder: Path) -> Path:
    folder.mkdir()
    write(folder / "conv.yaml", """
        op: conv2d_transpose
        defaults: {input: [1, 2, 5, 5], out_channels: 3, kernel_size: 3, data: {x: normal, w: normal, seed: 3}}
        cases:
          - id: shards-conv
            matrix: {stride: [1, 2], padding: [same, valid]}
          - id: shards-conv-both
            mode: both
            stride: 2
            padding: 1
            bias: true
          - id: shards-conv-exact
            description: no rounding allowed - fails, so the shard writes reproducers
            tolerance: {rtol: 0, atol: 0}
            stride: 2
            padding: same
    """)
    write(folder / "claims.yaml", """
        claims:
          - id: shards-claim-conv
            op: conv2d_transpose
            input: [1, 2, "=h", "=h"]
            sweep: {h: [4, 5]}
            sides:
              torch.functional: {weight: [2, 3, 3, 3], stride: 2, padding: 1}
              torch.nn: {in_channels: 2, out_channels: 3, kernel_size: 3, stride: 2, padding: 1, bias: false}
          - id: shards-claim-pool
            op: max_pool2d
            input: [1, 2, 6, 6]
            sides:
              torch.functional: {kernel_size: 2}
              torch.nn: {kernel_size: 2}
    """)
    write(folder / "pool.yaml", """
        op: max_pool2d
        defaults: {input: [1, 2, 6, 6], data: {x: normal, seed: 4}}
        cases:
          - id: shards-pool
            matrix: {kernel_size: [2, 3]}
    """)
    write(folder / "known_divergences.yaml", """
        divergences:
          - id: SHARD-USED
            backend: torch.functional
            cases: ["shards-pool[kernel_size=2]"]
            verdict: value_mismatch
            intermittent: true
            reason: matches one case, in one shard only - never stale
          - id: SHARD-STALE
            backend: torch.functional
            cases: ["no-such-case"]
            verdict: value_mismatch
            reason: matches no case in any shard - stale
    """)
    return folder


def _shim(folder: Path) -> dict:
    """An environment whose PATH has a ``conform`` that runs this checkout (the workflows' `conform`)."""
    folder.mkdir()
    shim = folder / "conform"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}


def _bash(line: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _conform_lines(steps: list[str]) -> list[str]:
    return [line for step in steps for line in step.splitlines() if line.lstrip().startswith("conform ")]


def _keyed(report: dict) -> dict:
    return {result_key(r): r["verdict"] for r in report["results"]}


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The suite run whole, and as the GitHub workflow's three shards (artifacts as plain copies) merged."""
    tmp = tmp_path_factory.mktemp("shards")
    suite = _suite(tmp / "suite")
    env = {**_shim(tmp / "bin"), "CONFORM_PATHS": str(suite), "CONFORM_BACKENDS": BACKENDS}
    whole = conform("run", suite, "--backends", BACKENDS, "--out", tmp / "whole", "--quiet")
    assert whole.returncode == 1, whole.stderr     # shards-conv-exact fails: the shards write reproducers

    workflow = yaml.safe_load(GITHUB.read_text())
    shard_job, merge_job = workflow["jobs"]["shard"], workflow["jobs"]["merge"]
    shards = shard_job["strategy"]["matrix"]["shard"]
    [run_line] = _conform_lines([s["run"] for s in shard_job["steps"] if "run" in s])
    for k in shards:
        line = run_line.replace("${{ matrix.shard }}", str(k)).replace("${{ strategy.job-total }}", str(len(shards)))
        proc = _bash(line, tmp, env)
        assert proc.returncode == 0, proc.stderr
        # upload-artifact/download-artifact: links followed, one folder per artifact
        shutil.copytree(tmp / f"shard-{k}", tmp / "shards" / f"conform-shard-{k}", symlinks=False)
    [merge_line] = _conform_lines([s["run"] for s in merge_job["steps"] if "run" in s])
    merged = _bash(merge_line, tmp, env)
    return tmp, whole, merged


def test_three_shards_merged_give_the_verdicts_of_one_run(runs):
    tmp, _, merged = runs
    assert merged.returncode == 1, merged.stderr   # the gate of the whole run, as its exit code
    one, joined = _report(tmp / "whole"), _report(tmp / "merged")
    assert _keyed(joined) == _keyed(one)
    assert [result_key(r) for r in joined["results"]] == [result_key(r) for r in one["results"]]   # one run's order
    assert any(key[2] is not None for key in _keyed(one))           # gradients merged too (mode: both)
    assert joined["gate"] == one["gate"] and joined["summary"] == one["summary"]
    assert [e["id"] for e in joined["stale_divergences"]] == [e["id"] for e in one["stale_divergences"]] \
        == ["SHARD-STALE"]
    # each shard on its own saw SHARD-USED match nothing, except the one holding its case
    unmatched = [{e["id"] for e in _report(tmp / f"shard-{k}")["suite"]["unmatched"]} for k in (1, 2, 3)]
    assert sum("SHARD-USED" in u for u in unmatched) == 2
    assert [c["id"] for c in joined["claims"]] == [c["id"] for c in one["claims"]] \
        == ["shards-claim-conv", "shards-claim-pool"]
    assert [c["status"] for c in joined["claims"]] == [c["status"] for c in one["claims"]] == ["holds", "holds"]
    assert joined["claims_summary"] == one["claims_summary"]
    failing = [r for r in joined["results"] if r["verdict"] == "value_mismatch"]
    assert failing and all((tmp / "merged" / r["repro"]).is_file() for r in failing)
    assert all((tmp / "merged" / r["repro"]).parent.joinpath("inputs.npz").is_file() for r in failing)
    for name in ("report.html", "junit.xml", "summary.md"):
        assert (tmp / "merged" / name).is_file()
    assert json.loads((tmp / "merged" / ".conform-out.json").read_text())["owned"]   # conform's folder rules


def test_every_case_is_in_exactly_one_shard_and_shards_are_balanced(runs):
    tmp, *_ = runs
    ids = [set(_report(tmp / f"shard-{k}")["suite"]["case_positions"]) for k in (1, 2, 3)]
    assert all(ids) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == {r["case"] for r in _report(tmp / "whole")["results"]}
    cases = load_suite(["cases"])
    backends = ["numpy", "numba", "torch.functional", "tf.nn", "jax.lax"]
    sharding = Sharding(cases, [], backends, None, 3)
    estimates = [sharding.estimate(k) for k in (1, 2, 3)]
    assert max(estimates) <= 1.05 * min(estimates)                   # LPT on 1,339 cases: near equal
    assert Sharding(cases, [], backends, None, 3).shard_of == sharding.shard_of   # deterministic


def test_longest_first_split():
    assert split([("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 3.0), ("e", 1.0)], 2) == [0, 1, 1, 0, 1]


def test_shards_of_different_suites_are_refused(runs, tmp_path):
    tmp, *_ = runs
    other = _suite(tmp_path / "other")
    (other / "pool.yaml").write_text((other / "pool.yaml").read_text().replace("[2, 3]", "[2, 4]"))
    proc = conform("run", other, "--backends", BACKENDS, "--shard", "2/3", "--out", tmp_path / "s2", "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    mixed = conform("merge", tmp / "shard-1", tmp_path / "s2", tmp / "shard-3", "--out", tmp_path / "m")
    assert mixed.returncode == 2
    assert f"cannot merge {tmp / 'shard-1'} (shard 1/3) and {tmp_path / 's2'} (shard 2/3)" in mixed.stderr
    assert "different suites" in mixed.stderr and "Traceback" not in mixed.stderr
    assert not (tmp_path / "m" / "report.json").exists()


def test_a_missing_or_repeated_shard_is_refused(runs, tmp_path):
    tmp, *_ = runs
    missing = conform("merge", tmp / "shard-1", tmp / "shard-3", "--out", tmp_path / "m")
    assert missing.returncode == 2 and "shard 2 of 3 absent" in missing.stderr
    twice = conform("merge", tmp / "shard-1", tmp / "shards/conform-shard-1", "--out", tmp_path / "m")
    assert twice.returncode == 2 and "are both shard 1/3" in twice.stderr
    partial = conform("merge", tmp / "shard-1", tmp / "shard-3", "--allow-partial", "--out", tmp_path / "p")
    report = _report(tmp_path / "p")
    assert partial.returncode == 1 and report["incomplete"] and not report["gate"]["passed"]
    assert report["suite"]["missing_shards"] == [2]


def test_the_gitlab_pipeline_runs_the_same_commands(runs, tmp_path):
    tmp, *_ = runs
    pipeline = yaml.safe_load(GITLAB.read_text())
    shard_job, merge_job = pipeline["conform-shard"], pipeline["conform-merge"]
    n = shard_job["parallel"]
    env = {**_shim(tmp_path / "bin"), "CONFORM_PATHS": str(tmp / "suite"), "CONFORM_BACKENDS": BACKENDS,
           "CI_NODE_TOTAL": str(n)}
    [run_line] = _conform_lines(shard_job["script"])
    for k in range(1, n + 1):
        proc = _bash(run_line, tmp_path, {**env, "CI_NODE_INDEX": str(k)})
        assert proc.returncode == 0, proc.stderr
    [merge_line] = _conform_lines(merge_job["script"])
    merged = _bash(merge_line, tmp_path, env)
    assert merged.returncode == 1, merged.stderr
    assert _keyed(_report(tmp_path / "merged")) == _keyed(_report(tmp / "whole"))
    assert merge_job["artifacts"]["reports"]["junit"] == "merged/junit.xml"
