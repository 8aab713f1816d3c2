"""End to end: `conform run` on small case sets with the real frameworks.

Nothing here is mocked: a test that says TensorFlow agrees has run TensorFlow.
A framework that is not installed makes the tests that need it skip, with
the reason.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import conform, write

FRAMEWORKS = {"tf.nn": "tensorflow", "torch.functional": "torch", "mindspore.nn": "mindspore"}
MISSING = [m for m in FRAMEWORKS.values() if importlib.util.find_spec(m) is None]
needs_frameworks = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")
BACKENDS = "numpy,tf.nn,torch.functional,mindspore.nn"

REPORT_FIELDS = {"case", "file", "line", "op", "params", "backend", "verdict", "expected_shape",
                 "actual_shape", "metrics", "tolerance", "error", "native_call", "emulated", "duration_ms"}


@needs_frameworks
def test_mapping_page_examples_pass_on_every_backend_with_the_page_shapes(tmp_path):
    proc = conform("run", "cases/conv2d_transpose/mapping_page.yaml", "--backends", BACKENDS,
                   "--out", tmp_path, "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["schema"] == "conform.report/1"
    assert {"created", "duration_s", "environment", "summary", "results"} <= set(report)
    assert {"python", "platform", "backends"} <= set(report["environment"])
    for bid in BACKENDS.split(","):
        env = report["environment"]["backends"][bid]
        assert env["available"] and env["version"], env
    page_shapes = {"seed-1-explicit-zero-padding": [1, 64, 19, 53], "seed-2-same": [1, 64, 16, 50],
                   "seed-3-valid-stride-3": [1, 64, 50, 152]}
    results = report["results"]
    assert len(results) == 6 * 4
    for r in results:
        assert REPORT_FIELDS <= set(r), set(REPORT_FIELDS) - set(r)
        assert r["verdict"] == "pass", r
        assert r["actual_shape"] == r["expected_shape"]
        if r["case"] in page_shapes:
            assert r["actual_shape"] == page_shapes[r["case"]]
        assert r["metrics"]["bound_ratio"] < 1
        assert r["duration_ms"] is not None and r["duration_ms"] >= 0
    # Each framework was called through its own API.
    calls = {r["backend"]: r["native_call"] for r in results if r["case"] == "seed-2-same"}
    assert "tf.nn.conv2d_transpose(" in calls["tf.nn"] and "padding='SAME'" in calls["tf.nn"]
    assert "pad_mode='same'" in calls["mindspore.nn"]
    assert calls["torch.functional"].startswith("torch.nn.functional.conv_transpose2d(")
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(results)


@needs_frameworks
def test_sweep_gives_one_result_per_case_and_backend(tmp_path):
    cases = write(tmp_path / "sweep.yaml", """
        op: conv2d_transpose
        defaults: {input: [2, 4, 5, 6], out_channels: 6, kernel_size: [3, 2], data: {seed: 3}}
        cases:
          - id: sweep
            matrix:
              stride: [1, 2]
              padding: [same, valid, [1, 0, 0, 1]]
              layout: [NCHW, NHWC]
          - id: grouped-dilated-bias
            input: [1, 4, 5, 5]
            groups: 2
            dilation: 2
            bias: true
            padding: 1
          - id: fp16
            dtype: float16
            stride: 2
            padding: same
    """)
    proc = conform("run", cases, "--backends", BACKENDS, "--out", tmp_path / "out", "--quiet")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    pairs = {(r["case"], r["backend"]) for r in report["results"]}
    assert len(pairs) == len(report["results"]) == 14 * 4
    bad = [r for r in report["results"] if r["verdict"] != "pass"]
    # TF's CPU kernel for explicit padding has no dilation: a capability gap, reported as such.
    assert [(r["case"], r["backend"], r["verdict"]) for r in bad] == [
        ("grouped-dilated-bias", "tf.nn", "unsupported")], bad
    assert "dilation" in bad[0]["reason"]
    assert proc.returncode == 0


@needs_frameworks
def test_rejected_calls_pass_when_every_framework_rejects_them(tmp_path):
    cases = write(tmp_path / "errors.yaml", """
        op: conv2d_transpose
        cases:
          - id: channels-not-divisible-by-groups
            input: [1, 3, 5, 5]
            out_channels: 4
            kernel_size: 3
            groups: 2
            expect: {error: true}
          - id: output-padding-too-large
            input: [1, 2, 5, 5]
            out_channels: 2
            kernel_size: 3
            stride: 2
            output_padding: 2
            expect: {error: true}
    """)
    proc = conform("run", cases, "--backends", "torch.functional,mindspore.nn,numpy", "--out", tmp_path / "out", "--quiet")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    verdicts = {(r["case"], r["backend"]): r["verdict"] for r in report["results"]}
    assert set(verdicts.values()) <= {"pass", "missing_error"}
    for (case, backend), verdict in verdicts.items():
        if verdict == "pass":
            r = next(r for r in report["results"] if (r["case"], r["backend"]) == (case, backend))
            assert r["error"]["type"] and r["error"]["message"]
    assert proc.returncode == (0 if set(verdicts.values()) == {"pass"} else 1)


@pytest.mark.skipif(importlib.util.find_spec("mindspore") is None, reason="mindspore not installed")
def test_a_real_divergence_fails_the_gate_unless_registered(tmp_path):
    cases = write(tmp_path / "op.yaml", """
        op: conv2d_transpose
        cases:
          - id: output-padding-with-crop
            input: [1, 2, 4, 4]
            out_channels: 2
            kernel_size: 3
            stride: 2
            padding: 1
            output_padding: 1
    """)
    empty = write(tmp_path / "empty.yaml", "divergences: []\n")
    proc = conform("run", cases, "--backends", "mindspore.nn", "--registry", empty, "--out", tmp_path / "a", "--quiet")
    assert proc.returncode == 1
    (result,) = json.loads((tmp_path / "a" / "report.json").read_text())["results"]
    assert result["verdict"] == "value_mismatch"
    assert result["metrics"]["bound_ratio"] > 1e3

    registry = write(tmp_path / "known.yaml", """
        divergences:
          - id: F2
            cases: "output-padding-with-crop"
            backend: mindspore.nn
            versions: ">=2.0"
            verdict: value_mismatch
            reason: MindSpore fills output_padding rows with zeros
          - id: never-matches
            cases: "no-such-case*"
            backend: mindspore.nn
            verdict: shape_mismatch
            reason: an entry that matches nothing is stale
          - id: other-backend
            cases: "*"
            backend: tf.nn
            verdict: shape_mismatch
            reason: tf.nn did not run, so this entry cannot be judged stale
    """)
    proc = conform("run", cases, "--backends", "mindspore.nn", "--registry", registry, "--out", tmp_path / "b", "--quiet")
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert proc.returncode == 0, proc.stderr
    assert report["results"][0]["verdict"] == "xfail"
    assert [s["id"] for s in report["stale_divergences"]] == ["never-matches"]
    strict = conform("run", cases, "--backends", "mindspore.nn", "--registry", registry, "--out", tmp_path / "c",
                     "--quiet", "--strict")
    assert strict.returncode == 1


def test_bad_case_file_exits_2_with_file_line_field_and_no_traceback(tmp_path):
    bad = write(tmp_path / "bad.yaml", """
        op: conv2d_transpose
        cases:
          - id: a
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel_size: 3
            stride: -1
          - id: b
            input: [1, 2, 3, 3]
            out_chanels: 2
            kernel_size: 3
    """)
    for command in (["run", "--out", tmp_path / "out"], ["validate"]):
        proc = conform(*command, bad)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert f"{bad}:7: stride:" in proc.stderr
        assert f"{bad}:10: out_chanels: unknown field (did you mean 'out_channels'?)" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_backend_is_a_usage_error(tmp_path):
    proc = conform("run", "cases/conv2d_transpose/mapping_page.yaml", "--backends", "paddle", "--out", tmp_path)
    assert proc.returncode == 2
    assert "unknown backend(s): paddle" in proc.stderr
    assert "Traceback" not in proc.stderr
