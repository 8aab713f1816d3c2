"""Gradient results in every reporter (issue 15): a result is a (case, backend, gradient).

Synthetic records: a case with its forward result and its ∂x, ∂w, ∂b results on two backends, one
gradient failing because its forward call failed, one a value mismatch. The reproducer test runs
the real float64 gradient oracle (harness/ops/conv2d_transpose/gradient.py) for the arrays it stores.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
from helpers import conform, write
from rich.console import Console
from test_reports import XSD, record, report_of

from harness.backends.numpy_ref import NumpyBackend
from harness.cases import load_file
from harness.ops.conv2d_transpose.gradient import vjp
from harness.report import html, junit, markdown
from harness.report.diff import diff, format_text
from harness.report.repro import ReproWriter, gradient_axes, repro_dir
from harness.report.schema import check
from harness.report.terminal import print_summary
from harness.runner import prepare

SHAPES = {"x": [1, 2, 4, 4], "w": [2, 2, 3, 3], "b": [2]}
CALL = "torch.autograd.grad(y, [x, weight, bias], grad_outputs=dy)"


def grad(case, backend, gradient, verdict="pass", **extra):
    fields = {"expected_shape": SHAPES[gradient], "actual_shape": SHAPES[gradient], "gradient_call": CALL, **extra}
    return record(case=case, backend=backend, verdict=verdict, gradient=gradient, **fields)


def results() -> list[dict]:
    out = []
    for backend in ("mindspore.nn", "torch.functional"):
        out += [record(case="f2", backend=backend), grad("f2", backend, "x"), grad("f2", backend, "w"),
                grad("f2", backend, "b")]
    # mindspore.nn: ∂w is off (the F2 finding); a backward-only case whose forward call failed.
    out[2] = grad("f2", "mindspore.nn", "w", "value_mismatch", reason="3% of elements outside the bound",
                  metrics={**record()["metrics"], "bound_ratio": 41.0, "mismatch_fraction": 0.03})
    out.append(grad("broken", "torch.functional", "x", "unexpected_error", forward_failed=True, metrics=None,
                    actual_shape=None, error={"type": "RuntimeError", "message": "bad stride"}))
    return out


def test_the_schema_accepts_the_gradient_fields_and_checks_their_types():
    assert check(report_of(results())) is None
    bad = report_of([grad("f2", "torch.functional", "x", forward_failed="yes")])
    assert check(bad) == "results[0].forward_failed: expected true or false, got str"


def test_html_shows_gradients_as_sub_rows_of_their_case():
    report = report_of(results())
    data = html.page_data(report, None)
    rows = [(c[0], c[8], c[9]) for c in data["cases"]]
    assert rows == [("f2", None, "f2"), ("f2 · ∂x", "x", "f2"), ("f2 · ∂w", "w", "f2"), ("f2 · ∂b", "b", "f2"),
                    ("broken · ∂x", "x", "broken")]
    assert data["param_values"]["gradient"] == ["forward", "∂x", "∂w", "∂b"]
    # Each row holds its own results per backend, coloured by their own verdicts.
    verdict = {(c[0], data["backends"][b]): data["verdicts"][cell[0]]
               for c in data["cases"] for b, cell in enumerate(c[4]) if cell}
    assert verdict[("f2 · ∂w", "mindspore.nn")] == "value_mismatch" and verdict[("f2", "mindspore.nn")] == "pass"
    assert len(verdict) == len(report["results"])
    failed = data["details"][len(report["results"]) - 1]
    assert failed["gradient_call"] == CALL and failed["forward_failed"] is True
    page = html.render(report)
    assert "9 results (7 gradients) · 2 cases" in page
    assert 'id="gradient-counts"' in page and "<td>gradients</td>" in page
    # The failure groups name the gradient row, and their pattern can name the operand.
    assert "f2 · ∂w</button>" in page and "gradient=∂w" in page


def test_html_without_gradients_is_as_before():
    data = html.page_data(report_of([record()]), None)
    assert "gradient" not in data["param_keys"] and data["cases"][0][0] == "c[stride=2]"
    assert 'id="gradient-counts"' not in html.render(report_of([record()]))


def test_capability_matrix_counts_gradients_under_their_own_row():
    unsupported = [grad("f2", "onnxruntime", g, "unsupported", reason="no gradients") for g in "xwb"]
    from harness.report.analysis import capabilities
    rows = capabilities([record(backend="onnxruntime"), *unsupported], ["onnxruntime"])
    status = {(r["dimension"], r["value"]): r["cells"]["onnxruntime"]["status"] for r in rows}
    assert status[("gradient", "∂w")] == "unsupported"
    assert all(s == "native" for (dim, _), s in status.items() if dim != "gradient"), status


def test_junit_names_gradients_distinctly_and_stably():
    import xmlschema
    text = junit.render(report_of(results()))
    xmlschema.XMLSchema(str(XSD)).validate(text)
    cases = [(tc.get("classname"), tc.get("name")) for tc in ET.fromstring(text).iter("testcase")]
    assert len(cases) == len(set(cases)) == 9
    assert ("conform.mindspore.nn", "f2") in cases and ("conform.mindspore.nn", "f2.grad_w") in cases
    assert ("conform.torch.functional", "broken.grad_x") in cases
    assert text == junit.render(report_of(copy.deepcopy(results())))       # same records, same names
    failure = next(tc for tc in ET.fromstring(text).iter("testcase") if tc.get("name") == "f2.grad_w")
    assert "gradient: ∂w" in failure.find("failure").text and CALL in failure.find("failure").text
    broken = next(tc for tc in ET.fromstring(text).iter("testcase") if tc.get("name") == "broken.grad_x")
    assert "the forward call itself failed" in broken.find("error").text


def test_summary_and_terminal_split_forward_and_gradient_counts():
    report = report_of(results())
    text = markdown.render(report)
    assert "| backend | forward | gradients |" in text
    assert "| `mindspore.nn` | 1 pass | 2 pass, 1 value\\_mismatch |" in text
    assert "| `torch.functional` | 1 pass | 3 pass, 1 unexpected\\_error |" in text
    assert "`f2 · ∂w`" in text and "`broken · ∂x`" in text                 # top failures name the gradient
    buffer = io.StringIO()
    print_summary(report, Console(file=buffer, color_system=None, width=300))
    out = buffer.getvalue()
    assert "mindspore.nn: forward: 1 pass · gradients: 2 pass, 1 value_mismatch" in out
    assert re.search(r"value_mismatch mindspore\.nn f2 · ∂w ", out), out
    assert "| backend | forward |" not in markdown.render(report_of([record()]))


def test_diff_keys_results_by_gradient():
    old = report_of(results())
    new = copy.deepcopy(old)
    for r in new["results"]:
        if r.get("gradient") == "b" and r["backend"] == "torch.functional":
            r["verdict"] = "value_mismatch"
        if r.get("gradient") == "w" and r["backend"] == "mindspore.nn":
            r["verdict"] = "pass"
    changes = diff(old, new)
    assert [(e["case"], e["backend"], e["gradient"]) for e in changes["worse"]] == [("f2", "torch.functional", "b")]
    assert [(e["case"], e["gradient"]) for e in changes["better"]] == [("f2", "w")]
    assert not changes["new"] and not changes["gone"]
    text = format_text(changes, "old.json", "new.json")
    assert "f2 · ∂b  pass -> value_mismatch" in text and "f2 · ∂w  value_mismatch -> pass" in text
    # A report written before gradients (no `gradient` key) matches the forward results, nothing else.
    legacy = report_of([{k: v for k, v in r.items() if k != "gradient"} for r in old["results"] if not r.get("gradient")])
    assert {e["gradient"] for e in diff(legacy, old)["new"]} == {"x", "w", "b"} and not diff(legacy, old)["gone"]


def test_diff_command_names_the_gradient_that_became_worse(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    base = results()
    old.write_text(json.dumps(report_of(base)))
    base[1] = {**base[1], "verdict": "crash", "metrics": None}
    new.write_text(json.dumps(report_of(base)))
    proc = conform("diff", old, new)
    assert proc.returncode == 1 and re.search(r"^  mindspore\.nn\s+f2 · ∂x  pass -> crash  \(bound_ratio 0.05 -> -\)$", proc.stdout, re.M), \
        proc.stdout + proc.stderr


CASE = """
op: conv2d_transpose
cases:
  - {id: f2, input: [1, 2, 4, 4], out_channels: 2, kernel_size: 3, stride: 2, padding: 1, output_padding: 1,
     bias: true}
"""


def test_repro_folders_of_gradients_do_not_collide_with_the_forward_one(tmp_path):
    case = load_file(write(tmp_path / "c.yaml", CASE))[0]
    call, reference = prepare(case)
    dy = np.random.default_rng(0).standard_normal(reference.output.shape)
    grads = vjp(call.params, call.arrays, dy)
    writer = ReproWriter(tmp_path / "out")
    program = NumpyBackend.describe(call)
    folders = {}
    forward = record(case="f2", backend="numpy", verdict="value_mismatch", params=call.params)
    folders[None] = writer.write(case, call, reference, forward,
                                 SimpleNamespace(output=reference.output + 1.0, program=program))
    grad_call = dataclasses.replace(call, arrays={**call.arrays, "dy": dy})
    for g in "xwb":
        ref = dataclasses.replace(reference, output=grads[g], magnitude=np.abs(grads[g]),
                                  expected_shape=grads[g].shape)
        rec = grad("f2", "numpy", g, "value_mismatch", params=call.params)
        folders[g] = writer.write(case, grad_call, ref, rec, SimpleNamespace(output=grads[g] + 0.5, program=program))
        assert folders[g] == repro_dir(tmp_path / "out", "f2", "numpy", g)
        stored = np.load(folders[g] / "inputs.npz")
        assert np.array_equal(stored["y_ref"], grads[g]) and np.array_equal(stored["dy"], dy)
        assert "GRADIENT = " + repr(g) in (folders[g] / "repro.py").read_text()
        assert rec["repro"] == f"repro/f2/numpy/grad_{g}/repro.py"
        assert ("heatmap" in rec) == (g != "b")                      # a 1-D bias gradient has no plane
    assert len(set(folders.values())) == 4
    assert np.array_equal(np.load(folders[None] / "inputs.npz")["y_ref"], reference.output)   # not overwritten
    assert gradient_axes("x", 4) == (0, 1) and gradient_axes("b", 1) is None


def test_a_gradient_reproducer_without_its_backward_program_says_it_cannot_run(tmp_path):
    case = load_file(write(tmp_path / "c.yaml", CASE))[0]
    call, reference = prepare(case)
    rec = grad("f2", "numpy", "x", "crash", params=call.params, metrics=None, actual_shape=None)
    ReproWriter(tmp_path / "out")(case, call, reference, rec, None)
    script = (tmp_path / "out" / rec["repro"]).read_text()
    assert "the backward program of backend 'numpy' did not come back" in script and "repro_error" not in rec
