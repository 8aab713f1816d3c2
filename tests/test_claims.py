"""Claims (harness/claims, Note [Claims]): the file format's errors, the seed page's claims through the real
TensorFlow and MindSpore, the Keras/torch U-Net pair through the real Keras and PyTorch, and claims in
report.json, junit.xml, summary.md, report.html and ``conform diff``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import envs
from harness.backends import backend_class
from harness.backends.base import NativeParamError
from harness.claims.load import load_claims, load_file
from harness.claims.run import ClaimOptions, run_claims
from harness.divergences import load as load_registry
from harness.report import claims as claim_reports
from harness.report.diff import diff
from harness.yamlsrc import ProblemsError
from tests.helpers import ROOT, conform, write

PAGE = ROOT / "cases" / "claims" / "mapping_page.yaml"
UNET = ROOT / "cases" / "claims" / "unet_keras_torch.yaml"
REGISTRY = ROOT / "cases" / "known_divergences.yaml"


def _problems(path: Path) -> list[str]:
    with pytest.raises(ProblemsError) as info:
        load_file(path)
    return [str(p) for p in info.value.problems]


def _needs(*backends: str) -> None:
    for bid in backends:
        available, reason = envs.availability(bid)
        if not available:
            pytest.skip(f"{bid}: {reason}")


def _run(specs, backends, tmp_path) -> dict:
    records = run_claims(specs, ClaimOptions(backends=list(backends), out=tmp_path, registry=load_registry(REGISTRY),
                                             repro_dir=tmp_path))
    return {r["id"]: r for r in records}


# ---------------------------------------------------------------- the format's errors, with file:line

def test_unknown_native_parameter_is_reported_at_its_line(tmp_path):
    path = write(tmp_path / "c.yaml", """
        claims:
          - id: c
            op: conv2d_transpose
            input: [1, 3, 8, 8]
            sides:
              tf.nn: {filters: [3, 3, 4, 3], output_shape: [1, 16, 16, 4], strides: 2, padding: SAME}
              mindspore.nn:
                in_channels: 3
                out_channels: 4
                kernel_size: 3
                stride: 2
                pad_mod: same
        """)
    problems = _problems(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:12: sides.mindspore.nn.pad_mod: "), problems


def test_ill_typed_native_parameter_names_it(tmp_path):
    path = write(tmp_path / "c.yaml", """
        claims:
          - id: c
            op: conv2d_transpose
            input: [1, 3, 8, 8]
            sides:
              tf.nn:
                filters: [3, 3, 4, 3]
                output_shape: [1, 16, 16, 4]
                strides: two
                padding: SAME
              mindspore.nn: {in_channels: 3, out_channels: 4, kernel_size: 3, stride: 2, pad_mode: same}
        """)
    assert _problems(path)[0].startswith(f"{path}:9: sides.tf.nn.strides: ")


def test_an_explicit_null_is_refused_at_its_line_where_the_api_default_is_not_none(tmp_path):
    path = write(tmp_path / "c.yaml", """
        claims:
          - id: c
            op: conv2d_transpose
            input: [1, 8, 15, 15]
            sides:
              torch.nn: {in_channels: 8, out_channels: 16, kernel_size: 3}
              tf.keras:
                filters: 16
                kernel_size: 3
                strides: null
        """)
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:10: sides.tf.keras.strides: keras.layers.Conv2DTranspose does not take "
                              "strides=None"), problem


def test_format_errors_each_at_their_line(tmp_path):
    path = write(tmp_path / "c.yaml", """
        defaults: {op: conv2d_transpose}
        claims:
          - id: no-reason
            input: [1, 3, 8, 8]
            expect: breaks
            sides:
              tf.nn: {filters: [3, 3, 4, 3], output_shape: [1, 16, 16, 4], strides: 2, padding: SAME}
              mindspore.nn: {in_channels: 3, out_channels: 4, kernel_size: 3, stride: 2, pad_mode: same}
          - id: unknown-variable
            input: [1, 3, 8, 8]
            sweep: {s: [1, 2]}
            sides:
              tf.nn: {filters: [3, 3, 4, 3], output_shape: [1, "=8*t", 16, 4], strides: "=s", padding: SAME}
              mindspore.nn: {in_channels: 3, out_channels: 4, kernel_size: 3, stride: "=s", pad_mode: same}
          - id: one-side
            input: [1, 3, 8, 8]
            sides:
              tf.nn: {filters: [3, 3, 4, 3], output_shape: [1, 16, 16, 4], strides: 2, padding: SAME}
          - id: unknown-surface
            input: [1, 3, 8, 8]
            sides:
              tf.nn: {filters: [3, 3, 4, 3], output_shape: [1, 16, 16, 4], strides: 2, padding: SAME}
              mxnet.gluon: {}
        """)
    problems = _problems(path)
    assert any(p.startswith(f"{path}:3: ") and "needs a `reason`" in p for p in problems), problems
    assert any(p.startswith(f"{path}:13: sides.tf.nn.output_shape[1]: unknown variable 't'") for p in problems)
    assert any(p.startswith(f"{path}:17: sides: ") for p in problems), problems
    assert any(p.startswith(f"{path}:23: sides.mxnet.gluon: unknown surface") for p in problems), problems


def test_validate_exits_2_and_prints_file_line(tmp_path):
    path = write(tmp_path / "c.yaml", """
        claims:
          - id: c
            op: conv2d_transpose
            input: [1, 3, 8, 8]
            sides:
              tf.nn: {filters: [3, 3, 4, 3], output_shape: [1, 16, 16, 4], strides: 2, padding: SAME, bogus: 1}
              mindspore.nn: {in_channels: 3, out_channels: 4, kernel_size: 3, stride: 2, pad_mode: same}
        """)
    result = conform("validate", path)
    assert result.returncode == 2
    assert f"{path}:6: sides.tf.nn.bogus: " in result.stderr
    assert "Traceback" not in result.stderr


def test_the_seed_page_validates_into_its_points():
    specs = {spec.id: spec for spec in load_claims([str(PAGE)])}
    sweep = specs["page-example-3-valid-kernel-below-stride"]
    assert [p.id for p in sweep.points][:2] == ["page-example-3-valid-kernel-below-stride[k=5,s=3]",
                                                "page-example-3-valid-kernel-below-stride[k=2,s=3]"]
    tf_side = specs["page-example-1-explicit-zero-padding"].points[0].sides[0]
    assert (tf_side.backend, tf_side.layout) == ("tf.nn", "NHWC")
    assert tf_side.case.canonical_params()["input"] == [1, 16, 50, 3]   # the claim's NCHW input, in tf.nn's layout


def test_native_param_error_is_the_adapters():
    with pytest.raises(NativeParamError) as info:
        backend_class("mindspore.nn").from_native("conv2d_transpose", {"in_channels": 3, "out_channels": 4,
                                                                       "kernel_size": 3, "pad_mod": "same"},
                                                  [1, 3, 8, 8])
    assert info.value.param == "pad_mod"


# ---------------------------------------------------------------- the seed page, through real TF and MindSpore

@pytest.fixture(scope="module")
def page_records(tmp_path_factory):
    _needs("tf.nn", "mindspore.nn")
    wanted = {"page-example-1-explicit-zero-padding", "page-example-2-same", "page-example-3-valid",
              "page-example-3-valid-kernel-below-stride"}
    specs = [spec for spec in load_claims([str(PAGE)]) if spec.id in wanted]
    return _run(specs, ["tf.nn", "mindspore.nn"], tmp_path_factory.mktemp("page"))


@pytest.mark.parametrize("claim", ["page-example-1-explicit-zero-padding", "page-example-2-same",
                                   "page-example-3-valid"])
def test_the_three_examples_hold_on_the_page_shapes(page_records, claim):
    record = page_records[claim]
    assert (record["status"], record["gate"]) == ("holds", True), record.get("gate_reason")
    point = record["points"][0]
    assert point["verdict"] == "pass"
    assert {s["backend"]: s["verdict"] for s in point["sides"]} == {"tf.nn": "pass", "mindspore.nn": "pass"}
    shapes = {"page-example-1-explicit-zero-padding": [1, 64, 19, 53], "page-example-2-same": [1, 64, 16, 50],
              "page-example-3-valid": [1, 64, 50, 152]}[claim]
    assert point["sides"][1]["actual_shape"] == shapes                  # MindSpore's NCHW output, as on the page
    assert point["sides"][0]["actual_shape"] == [shapes[0], *shapes[2:], shapes[1]]   # TensorFlow's NHWC
    assert point["max_abs_diff"] is not None and point["ratio"] <= 1


def test_example_3_breaks_below_the_stride_with_f1(page_records):
    record = page_records["page-example-3-valid-kernel-below-stride"]
    assert record["status"] == "breaks" and record["gate"], record.get("gate_reason")
    assert record["points"][0]["verdict"] == "pass"                    # the page's own k=5, s=3 holds
    assert record["first_break"] == "page-example-3-valid-kernel-below-stride[k=2,s=3]"
    breaking = record["breaking"]
    assert breaking["verdict"] == "shape_mismatch"
    assert "tf.nn returns [1, 8, 47, 149], mindspore.nn [1, 8, 48, 150]" in breaking["reason"]
    assert breaking["divergences"] == ["F1-mindspore-valid-kernel-below-stride"]
    assert "mindspore.nn departs from its own canonical meaning" in breaking["explanation"]
    assert record["points"][1]["verdict"] == "xfail"
    assert record["repro"] == "repro/claims/page-example-3-valid-kernel-below-stride_k=2,s=3_/repro.py"


def test_a_claim_expected_to_break_that_holds_fails_the_gate(page_records):
    record = dict(page_records["page-example-1-explicit-zero-padding"], expect="breaks",
                  expect_reason="wrong", explained_by=[])
    from harness.claims.verdicts import _gate
    passed, why = _gate(record, None)
    assert not passed and "expected to break" in why


# ---------------------------------------------------------------- the U-Net upsampler, through real Keras and torch

def test_unet_keras_torch_pair_breaks_with_the_crop_sides_named(tmp_path):
    _needs("tf.keras", "torch.nn")
    specs = load_claims([str(UNET)])
    record = _run(specs, ["tf.keras", "torch.nn"], tmp_path)["unet-upsampler-keras-same-vs-torch-padding-1"]
    assert record["status"] == "breaks" and record["gate"], record.get("gate_reason")
    point = next(p for p in record["points"] if p["id"] == record["first_break"])
    assert (point["verdict"], point["original_verdict"]) == ("xfail", "value_mismatch")
    assert [s["actual_shape"] for s in point["sides"]] == [[1, 30, 30, 16], [1, 16, 30, 30]]   # same 30x30
    assert "tf.keras crops (0, 1) rows and (0, 1) columns, torch.nn crops (1, 0) rows and (1, 0) columns" \
        in point["contrast"]
    assert all(s["verdict"] == "pass" for s in point["sides"])   # each does what its own call means
    assert point["max_abs_diff"] > 1


# ---------------------------------------------------------------- reports, junit, diff

@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    _needs("tf.nn", "mindspore.nn")
    out = tmp_path_factory.mktemp("cli")
    result = conform("run", "cases/claims", "-k", "page-example-3-*", "--backends", "tf.nn,mindspore.nn",
                     "--out", out)
    return result, out


def test_the_cli_reports_claims_everywhere(cli_run):
    result, out = cli_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "claim ok   page-example-3-valid-kernel-below-stride: breaks at " in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["gate"]["passed"]
    assert report["claims_summary"]["by_status"] == {"breaks": 1, "holds": 1}
    ids = {c["id"] for c in report["claims"]}
    assert ids == {"page-example-3-valid", "page-example-3-valid-kernel-below-stride"}
    broken = next(c for c in report["claims"] if c["status"] == "breaks")
    assert (out / broken["repro"]).is_file() and (out / broken["repro"]).with_name("inputs.npz").is_file()
    cases = ET.parse(out / "junit.xml").getroot().findall(".//testsuite[@name='claims']/testcase")
    assert {c.get("classname") for c in cases} == {f"claims.{i}" for i in ids}
    assert len(cases) == 5                                               # one per point: 1 + 4
    assert "### Claims" in (out / "summary.md").read_text()
    html = (out / "report.html").read_text()
    assert 'id="claims"' in html and "F1-mindspore-valid-kernel-below-stride" in html


def test_diff_says_a_held_claim_that_broke_is_worse(cli_run):
    _, out = cli_run
    old = json.loads((out / "report.json").read_text())
    new = json.loads(json.dumps(old))
    held = next(c for c in new["claims"] if c["status"] == "holds")
    held.update(status="breaks", gate=False, first_break=held["points"][0]["id"], gate_reason="breaks")
    changes = diff(old, new)
    assert [(e["case"], e["backend"]) for e in changes["worse"]] == [(held["id"], "claim")]
    assert diff(new, old)["better"] and not diff(new, old)["worse"]
    assert claim_reports.gate_passes(old["claims"]) and not claim_reports.gate_passes(new["claims"])


def test_a_claim_over_the_memory_budget_is_refused_at_its_input(tmp_path):
    """As a case on the same input would be (harness.memory.Budget, cases.load_suite)."""
    from harness.memory import GIB, Budget
    path = write(tmp_path / "c.yaml", """
        claims:
          - id: big
            op: conv2d
            input: [1, 8, 20000, 20000]
            sides:
              torch.nn: {in_channels: 8, out_channels: 8, kernel_size: 3}
              mindspore.nn: {in_channels: 8, out_channels: 8, kernel_size: 3, pad_mode: valid}
        """)
    budget = Budget.for_backends(8 * GIB, ["torch.nn", "mindspore.nn"])
    with pytest.raises(ProblemsError) as info:
        load_claims([str(path)], memory_budget=budget)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith(f"{path}:4: input: the torch.nn side needs ~"), problem
    assert problem.endswith("GiB, the budget is 8 GiB (--max-memory)")
    assert load_claims([str(path)])        # without a budget the claim itself is fine
    result = conform("validate", path, "--max-memory", "8G")
    assert result.returncode == 2 and f"{path}:4: input: the torch.nn side needs" in result.stderr


def test_a_claim_expected_to_break_that_could_not_be_checked_is_skipped(tmp_path):
    """Its sides not selected: neither a failure (it did not hold) nor an expected break (it did not break)."""
    specs = load_claims([str(PAGE)])
    spec = next(s for s in specs if s.claim.expect == "breaks")
    (record,) = run_claims([spec], ClaimOptions(backends=["numpy"], out=tmp_path))
    assert record["status"] == "unchecked" and record["gate"]
    assert record["gate_reason"].startswith("not checked: ") and "not selected (--backends)" in record["gate_reason"]
    assert {p["verdict"] for p in record["points"]} == {"skipped"}
    report = {"claims": [record]}
    assert claim_reports.gate_passes([record])
    assert claim_reports.summary([record])["expected_breaks"] == 0
    (line, why) = claim_reports.lines(report)[:2]
    assert line.startswith(f"claim skip {spec.id}: unchecked") and why == f"    gate: {record['gate_reason']}"
    cases = ET.Element("testsuites")
    assert claim_reports.junit(cases, report, str) == {"tests": len(record["points"]), "failures": 0, "errors": 0,
                                                        "skipped": len(record["points"])}
    # conform diff, as for a skipped case: checked now is new, no longer checked is unrun, whatever it expects
    # (an older report failed it: still no change)
    old = dict(record, gate=False, gate_reason="expected to break (...), but it unchecked")
    broke = dict(record, status="breaks", gate=True, first_break=record["points"][0]["id"])
    changed = {k: [e["case"] for e in v] for k, v in claim_reports.diff({"claims": [old]}, {"claims": [record]}).items()}
    assert not any(changed.values()), changed
    assert [e["case"] for e in claim_reports.diff({"claims": [old]}, {"claims": [broke]})["new"]] == [spec.id]
    assert [e["case"] for e in claim_reports.diff({"claims": [broke]}, {"claims": [record]})["unrun"]] == [spec.id]
    assert [e["case"] for e in claim_reports.diff({"claims": [record]}, {"claims": [broke]})["new"]] == [spec.id]


def test_a_side_that_cannot_be_read_reports_the_error_of_its_own_layout(tmp_path):
    """Read in NCHW, then retried in NHWC: the error said is the declared layout's, both when none is declared."""
    path = write(tmp_path / "c.yaml", """
        claims:
          - id: c
            op: conv2d
            input: [1, 8, 15, 15]
            sides:
              mindspore.nn:
                in_channels: 8
                out_channels: 4
                kernel_size: 3
                pad_mode: same
                padding: 1
              torch.nn: {in_channels: 8, out_channels: 4, kernel_size: 3, padding: same, stride: 2}
        """)
    problems = _problems(path)
    assert problems[0].startswith(f"{path}:11: sides.mindspore.nn.padding: [1, 1, 1, 1] with pad_mode='same'"), \
        problems
    assert "channels 15" not in problems[0]
    from harness.claims.load import canonical_fields
    with pytest.raises(NativeParamError) as info:      # torch declares no layout: both readings' errors
        canonical_fields(backend_class("torch.nn"), "conv2d", {"in_channels": 8, "out_channels": 4, "kernel_size": 3,
                                                               "padding": "same", "stride": 2}, [1, 8, 15, 15])
    assert info.value.param == "padding"
    assert "torch refuses it for strided convolutions (the input read as NCHW; read as NHWC: in_channels: " \
           "in_channels = 8 must equal the input's channels 15)" in info.value.message


@pytest.mark.parametrize("expr, message", [
    ("=" + "+".join(["s"] * 3000), "characters long; the limit is 500"),
    ("=" + "-" * 3000 + "s", "characters long; the limit is 500"),
])
def test_an_expression_too_long_is_an_error_at_its_line(tmp_path, expr, message):
    path = write(tmp_path / "c.yaml", f"""
        claims:
          - id: c
            op: conv2d_transpose
            input: [1, 3, 8, 8]
            sweep: {{s: [1, 2]}}
            sides:
              tf.nn: {{filters: [3, 3, 4, 3], output_shape: [1, 16, 16, 4], strides: 2, padding: SAME}}
              mindspore.nn:
                in_channels: 3
                out_channels: 4
                kernel_size: 3
                stride: "{expr}"
                pad_mode: same
        """)
    problems = _problems(path)
    assert problems[0].startswith(f"{path}:12: sides.mindspore.nn.stride: "), problems
    assert message in problems[0]


def test_a_mindspore_pad_list_claim_is_posed_natively_as_its_pad(tmp_path):
    """pad_list and pad are two spellings of the primitive's pads: the adapter's pad=... poses the claim's pad_list."""
    path = write(tmp_path / "c.yaml", """
        claims:
          - id: c
            op: conv2d_transpose
            input: [1, 2, 5, 5]
            sides:
              torch.nn: {in_channels: 2, out_channels: 3, kernel_size: 3, stride: 2, padding: 1, output_padding: 1}
              mindspore.ops:
                out_channel: 2
                kernel_size: 3
                stride: 2
                pad_mode: pad
                pad_list: [1, 1, 1, 1]
                input_size: [1, 3, 10, 10]
        """)
    (spec,) = load_file(path)
    side = spec.points[0].sides[1]
    assert side.case.canonical_params()["padding"] == [1, 1, 1, 1]
