"""Reports and reproducers for any values: NaN/Inf metrics, hostile text, colliding ids, odd saved reports.

The reproducer tests run real backends (the in-house ``numpy`` kernel, and
PyTorch when installed) on cases with an exact tolerance, so every result
fails with ``bound_ratio`` inf.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys

import pytest
from helpers import conform, write
from rich.console import Console
from test_reports import XSD, record, report_of

from harness.backends.numpy_ref import NumpyBackend
from harness.cases import load_file
from harness.report import junit, markdown
from harness.report.repro import safe_name
from harness.report.repro_scripts import render_script
from harness.runner import prepare
from harness.text import clean
from harness.report.terminal import print_summary

EXACT_CASES = """
op: conv2d_transpose
defaults: {input: [1, 3, 5, 6], out_channels: 2, kernel_size: 3, tolerance: {rtol: 0, atol: 0}}
cases:
  - id: exact
    matrix: {stride: [1, 2], padding: [same, valid, 1], bias: [false, true]}
"""


def test_every_reproducer_of_a_run_with_inf_metrics_compiles_and_one_reproduces(tmp_path):
    backends = "numpy,torch" if importlib.util.find_spec("torch") else "numpy"
    out = tmp_path / "out"
    proc = conform("run", write(tmp_path / "exact.yaml", EXACT_CASES), "--backends", backends, "--out", out,
                   "--quiet")
    assert proc.returncode == 1, proc.stderr
    report = json.loads((out / "report.json").read_text())
    failing = [r for r in report["results"] if r["verdict"] == "value_mismatch"]
    assert len(failing) >= 12 and all(r["metrics"]["bound_ratio"] == "inf" for r in failing)
    scripts = sorted((out / "repro").rglob("repro.py"))
    assert len(scripts) == len(failing) == len({s.parent for s in scripts})
    for script in scripts:
        compile(script.read_text(encoding="utf-8"), str(script), "exec")
    numpy_script = out / next(r["repro"] for r in failing if r["backend"] == "numpy")
    assert "float('inf')" in numpy_script.read_text()
    run = subprocess.run([sys.executable, str(numpy_script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr           # 1: it reproduces (not a NameError)
    assert "bound_ratio: inf" in run.stdout and "verdict: value_mismatch" in run.stdout


def test_a_reproducer_holds_any_metric_value_as_python(tmp_path):
    rec = record(backend="numpy", verdict="value_mismatch", case="c\ud800\x1b[2J",
                 metrics={"max_abs_err": float("nan"), "max_rel_err": float("-inf"), "bound_ratio": float("inf"),
                          "worst_index": [0, 0, 1, 1]})
    program = NumpyBackend.describe(prepare(load_file(write(tmp_path / "c.yaml", EXACT_CASES))[0])[0])
    script = render_script(rec, program, {"model": "override", "rtol": 0.0, "atol": float("inf")}, False)
    script.encode("utf-8")                                          # no lone surrogate reaches the file
    namespace: dict = {"__file__": "repro.py"}
    head = script.split("\n# ---- the operands")[0].replace("DATA = np.load(os.path.join(HERE, 'inputs.npz'))", "")
    exec(compile(head, "repro.py", "exec"), namespace)              # the constants, without the inputs file
    metrics = namespace["RECORDED_METRICS"]
    assert metrics["bound_ratio"] == float("inf") and metrics["max_rel_err"] == float("-inf")
    assert metrics["max_abs_err"] != metrics["max_abs_err"] and namespace["TOLERANCE"]["atol"] == float("inf")


def test_repro_folder_names_are_unique_per_id():
    ids = ["ca:b", "ca_b-6eaf1ea9", "ca_b", "ca/b", "ca b", "x" * 200, "x" * 201]
    assert len({safe_name(i) for i in ids}) == len(ids)
    assert safe_name("plain-id") == "plain-id"


HOSTILE = "lone \ud800 · ESC \x1b[2J · CSI \x9b31m · NUL \x00 · bidi \u202e · \ufffe"


def _hostile_report() -> dict:
    results = [record(case=f"c-{HOSTILE}", verdict="value_mismatch", reason=HOSTILE, description=HOSTILE,
                      error={"type": "E", "message": HOSTILE}),
               record(case="plain", backend=HOSTILE, verdict="crash", reason=HOSTILE, metrics=None)]
    return clean(report_of(results))


def test_junit_of_hostile_text_is_valid_utf8_xml_against_the_schema():
    import xmlschema
    text = junit.render(_hostile_report())
    text.encode("utf-8")
    xmlschema.XMLSchema(str(XSD)).validate(text)
    assert not any(c in text for c in "\x1b\x9b\x00\ud800")


def test_summary_and_terminal_show_control_characters_as_escapes():
    report = _hostile_report()
    page = markdown.render(report)
    buffer = io.StringIO()
    print_summary(report, Console(file=buffer, color_system=None, width=400))
    for text in (page, buffer.getvalue()):
        text.encode("utf-8")
        assert not any(c in text for c in "\x1b\x9b\x00\u202e\ud800"), text
        assert "\\x1b[2J" in text and "\\u202e" in text


# ---------------------------------------------------------------- conform report on saved reports

def test_conform_report_renders_a_report_of_an_older_version(tmp_path):
    """The fields DESIGN.md §7 first fixed, nothing more: no gate, summary, reason, dtype, incomplete."""
    old = {"schema": "conform.report/1", "created": "2025-01-01T00:00:00+00:00", "duration_s": 3.5,
           "environment": {"python": "3.11", "platform": "linux",
                           "backends": {"numpy": {"framework": "numpy", "version": "1.26", "available": True,
                                                  "reason": ""}}},
           "results": [{"case": "a", "file": "cases/a.yaml", "line": 3, "op": "conv2d_transpose",
                        "params": {"stride": [2, 2]}, "backend": "numpy", "verdict": "value_mismatch",
                        "expected_shape": [1, 2, 8, 8], "actual_shape": [1, 2, 8, 8],
                        "metrics": {"max_abs_err": 1.0, "max_rel_err": 1.0, "max_ulp": 9.0,
                                    "mismatch_fraction": 0.5, "worst_index": [0, 0, 1, 1]},
                        "tolerance": None, "error": None, "native_call": None, "emulated": False,
                        "duration_ms": 2.0}]}
    saved = tmp_path / "saved" / "report.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps(old))
    proc = conform("report", saved, "--out", tmp_path / "again")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "gate FAILED" in (tmp_path / "again" / "summary.md").read_text()


@pytest.mark.parametrize("field, value, rc, message", [
    ("verdict", 3, 2, "results[0].verdict: expected a string, got int"),
    ("params", "stride=2", 2, "results[0].params: expected a mapping, got str"),
    ("metrics", [1, 2], 2, "results[0].metrics: expected a mapping, got list"),
    ("line", "three", 2, "results[0].line: expected an integer, got str"),
    ("notes", [1], 2, "results[0].notes[0]: expected a string, got int"),
    ("params", {"groups": "two", "stride": [1, "a"], "padding": {"x": []}}, 0, ""),   # odd values inside: shown
])
def test_conform_report_on_odd_field_types_never_tracebacks(tmp_path, field, value, rc, message):
    fields = {field: value} if field == "verdict" else {field: value, "verdict": "value_mismatch"}
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps(report_of([record(**fields)])))
    proc = conform("report", saved, "--out", tmp_path / "out")
    assert proc.returncode == rc and "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
