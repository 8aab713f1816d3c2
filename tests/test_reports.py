"""Reports people read: junit.xml (against Jenkins' XSD), summary.md, report.html's escaping,
reproducers (a real MindSpore divergence reproduced by its standalone script), and `conform diff`.

The browser half (real headless Chromium) is tests/test_report_browser.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import conform, write

from harness.report import analysis, html, junit, markdown
from harness.report.diff import diff, severity
from harness.report.repro import repro_dir, safe_name
from harness.report.repro_scripts import render_script

ROOT = Path(__file__).resolve().parents[1]
XSD = ROOT / "tests" / "data" / "junit-10.xsd"
FRAMEWORKS = {"tf.nn": "tensorflow", "torch.functional": "torch", "mindspore.nn": "mindspore"}
HAS = {b: importlib.util.find_spec(m) is not None for b, m in FRAMEWORKS.items()}
needs_mindspore = pytest.mark.skipif(not HAS["mindspore.nn"], reason="mindspore is not installed")
needs_frameworks = pytest.mark.skipif(not all(HAS.values()),
                                      reason="needs tensorflow, torch and mindspore installed")
XSS = "<script>window.__pwned=1</script>"


def record(case="c[stride=2]", backend="mindspore.nn", verdict="pass", **extra) -> dict:
    r = {"case": case, "file": "cases/x.yaml", "line": 3, "op": "conv2d_transpose",
         "params": {"input": [1, 2, 4, 4], "layout": "NCHW", "out_channels": 2, "kernel_size": [3, 3],
                    "stride": [2, 2], "padding": [1, 1, 1, 1], "output_padding": [1, 1], "dilation": [1, 1],
                    "groups": 1, "bias": False, "output_shape": None},
         "dtype": "float32", "backend": backend, "verdict": verdict, "reason": "",
         "expected_shape": [1, 2, 8, 8], "actual_shape": [1, 2, 8, 8],
         "metrics": {"max_abs_err": 1e-7, "max_rel_err": 1e-6, "max_ulp": 1.0, "mismatch_fraction": 0.0,
                     "worst_index": [0, 0, 1, 1], "bound_ratio": 0.05, "nonfinite_mismatches": 0},
         "tolerance": None, "error": None, "native_call": "f(x)", "emulated": False, "notes": [],
         "duration_ms": 1.5, "source": None, "description": None}
    r.update(extra)
    return r


def report_of(results, strict=False, passed=None) -> dict:
    from harness.report.json_report import SCHEMA, gate_passes, summarize
    return {"schema": SCHEMA, "created": "2026-01-01T00:00:00+00:00", "duration_s": 1.0, "incomplete": False,
            "gate": {"passed": gate_passes(results, strict) if passed is None else passed, "strict": strict},
            "environment": {"python": "3.11", "platform": "linux", "cpu": "cpu",
                            "backends": {"mindspore.nn": {"framework": "mindspore", "version": "2.10.0",
                                                          "available": True, "reason": ""}}},
            "summary": summarize(results), "stale_divergences": [], "results": results}


EVERY_VERDICT = [
    record(verdict="pass"),
    record(case="c-xfail", verdict="xfail", original_verdict="value_mismatch",
           divergence={"id": "F2", "reason": "MindSpore fills output_padding rows with zeros", "link": "docs/x.md"}),
    record(case="c-xpass", verdict="xpass", divergence={"id": "F1", "reason": "r", "link": "l"}),
    record(case="c-value", verdict="value_mismatch", reason="12% outside the bound",
           metrics={"max_abs_err": 4.0, "max_rel_err": 1.0, "max_ulp": 1e7, "mismatch_fraction": 0.12,
                    "worst_index": [0, 0, 4, 7], "bound_ratio": "inf", "nonfinite_mismatches": 0}),
    record(case="c-shape", verdict="shape_mismatch", reason="shape [1, 2, 9, 9] != expected [1, 2, 8, 8]",
           metrics=None, actual_shape=[1, 2, 9, 9]),
    record(case="c-missing", verdict="missing_error", expected_shape=None, metrics=None),
    record(case="c-unexpected", verdict="unexpected_error", reason="ValueError: bad", metrics=None,
           error={"type": "ValueError", "message": "bad \x01 control & <chars>"}),
    record(case="c-crash", verdict="crash", reason="worker killed by signal SIGSEGV", metrics=None),
    record(case="c-timeout", verdict="timeout", reason="no answer within 120 s", metrics=None),
    record(case="c-unsupported", verdict="unsupported", reason="no float64 kernel", metrics=None),
    record(case="c-skipped", verdict="skipped", reason="mindspore is not installed", metrics=None),
]


# ---------------------------------------------------------------- junit.xml

def _junit(results, strict=False):
    import xmlschema
    text = junit.render(report_of(results, strict=strict))
    xmlschema.XMLSchema(str(XSD)).validate(text)
    return ET.fromstring(text)


def test_junit_validates_against_the_jenkins_schema_and_maps_every_verdict():
    root = _junit(EVERY_VERDICT)
    cases = {tc.get("name"): tc for tc in root.iter("testcase")}
    assert len(cases) == len(EVERY_VERDICT)

    def kind(name):
        children = [c.tag for c in cases[name]]
        return children[0] if children else "pass"

    assert kind("c[stride=2]") == "pass"
    assert kind("c-xfail") == "system-out" and "F2" in cases["c-xfail"].find("system-out").text
    assert kind("c-xpass") == "system-out"            # not strict: a note, not a failure
    for name in ("c-value", "c-shape", "c-missing"):
        assert kind(name) == "failure", name
        assert cases[name].find("failure").get("type") in ("value_mismatch", "shape_mismatch", "missing_error")
    for name in ("c-unexpected", "c-crash", "c-timeout"):
        assert kind(name) == "error", name
    for name in ("c-unsupported", "c-skipped"):
        assert kind(name) == "skipped", name
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == \
        ("11", "3", "3", "2")
    assert root.get("tests") == "11" and root.get("failures") == "3" and root.get("errors") == "3"
    assert float(cases["c[stride=2]"].get("time")) == pytest.approx(0.0015)
    # Control characters cannot appear in XML 1.0 even escaped: replaced, and the file still parses.
    assert "\x01" not in cases["c-unexpected"].find("error").text


def test_junit_xpass_fails_only_with_strict():
    root = _junit(EVERY_VERDICT, strict=True)
    xpass = next(tc for tc in root.iter("testcase") if tc.get("name") == "c-xpass")
    assert xpass.find("failure") is not None and root.find("testsuite").get("failures") == "4"


def test_junit_escapes_markup_in_case_strings():
    root = _junit([record(case="bad", reason=f'{XSS} & "quotes"', verdict="value_mismatch",
                          native_call=f"call({XSS})")])
    failure = next(root.iter("failure"))
    assert XSS in failure.get("message") and XSS in failure.text   # round-trips as text, not markup


# ---------------------------------------------------------------- summary.md

def test_summary_markdown_has_the_gate_a_count_table_and_the_top_failures():
    text = markdown.render(report_of(EVERY_VERDICT))
    assert text.startswith("## conform: ❌ gate FAILED")
    assert "| backend | version |" in text and "| `mindspore.nn` | 2.10.0 |" in text
    assert "### Top failures" in text and "`c-crash`" in text
    # Most severe first.
    assert text.index("`c-crash`") < text.index("`c-value`")
    ok = markdown.render(report_of([record()]))
    assert ok.startswith("## conform: ✅ gate passed") and "Top failures" not in ok


def test_summary_markdown_escapes_case_strings():
    text = markdown.render(report_of([record(case="x|y`z", verdict="value_mismatch", reason=f"{XSS} | [a](javascript:x)")]))
    row = next(line for line in text.splitlines() if "value_mismatch" in line and "x" in line and "|" in line
               and "javascript" in line)
    assert "<script>" not in text and "&lt;script&gt;" in row
    assert "\\[a\\](javascript:x)" in row             # no live link: the brackets are escaped
    assert row.count(" | ") == 5                           # the pipes inside did not add table cells


# ---------------------------------------------------------------- report.html (static checks)

def _hostile_report() -> dict:
    hostile = record(case=XSS + "[stride=2]", verdict="value_mismatch", reason=XSS, description=XSS,
                     source='"><img src=x onerror="window.__pwned=2">', native_call=f"f({XSS})",
                     notes=[XSS], error={"type": XSS, "message": XSS},
                     repro="javascript:window.__pwned=3", heatmap="../../../etc/passwd",
                     divergence={"id": XSS, "reason": XSS, "link": "javascript:alert(1)"})
    hostile["params"]["padding"] = XSS     # even a parameter value (the case model would refuse it)
    report = report_of([hostile, record()])
    report["environment"]["python"] = XSS
    report["environment"]["backends"]["mindspore.nn"]["version"] = XSS
    report["stale_divergences"] = [{"id": XSS, "file": XSS, "line": 1, "reason": XSS}]
    return report


def test_html_escapes_every_string_from_the_case_file(tmp_path):
    page = html.render(_hostile_report(), tmp_path, tmp_path)
    # The only <script> elements are the page's own two.
    assert len(re.findall(r"<script\b", page, re.I)) == 2
    assert "window.__pwned" in page                    # the text is there ...
    assert "<script>window.__pwned" not in page         # ... but never as markup
    assert "<img" not in page and 'onerror="' not in page
    data = json.loads(_embedded_json(page))
    assert "repro" not in data["details"][0] and "heatmap" not in data["details"][0]   # unsafe paths dropped
    assert data["cases"][0][0] == XSS + "[stride=2]" and data["cases"][0][6] == XSS


def _embedded_json(page: str) -> str:
    return page.split('<script type="application/json" id="conform-data">', 1)[1].split("</script>", 1)[0]


def test_html_is_self_contained_and_allows_no_network(tmp_path):
    page = html.render(report_of(EVERY_VERDICT), tmp_path, tmp_path)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page


def test_failure_groups_find_the_shared_pattern_once():
    results = []
    for s in (1, 2, 3):
        for k in (1, 2, 3, 4):
            for pad in ("valid", "same", [1, 1, 1, 1]):
                r = record(case=f"c[s={s},k={k},p={pad}]")
                r["params"].update(stride=[s, s], kernel_size=[k, k], padding=pad, output_padding=[0, 0])
                if pad == "valid" and k < s:
                    r["verdict"] = "shape_mismatch"
                results.append(r)
    groups = analysis.failure_groups(results)
    assert len(groups) == 1
    g = groups[0]
    assert set(g["pattern"]) == {"kernel<stride", "padding=valid"} and g["count"] == g["matching"] == 3
    assert g["label"] == "mindspore.nn · " + " · ".join(g["pattern"])


def test_capability_matrix_reads_unsupported_and_emulated_from_results():
    a = record(backend="tf.nn")
    b = record(backend="tf.nn", verdict="unsupported", reason="no dilation on CPU")
    b["params"]["dilation"] = [2, 2]
    c = record(backend="torch.functional", emulated=True, notes=["padding 'same' emulated"])
    c["params"]["padding"] = "same"
    rows = {(r["dimension"], r["value"]): r["cells"] for r in analysis.capabilities([a, b, c], ["tf.nn", "torch.functional"])}
    assert rows[("dilation", ">1")]["tf.nn"]["status"] == "unsupported"
    assert "no dilation on CPU" in rows[("dilation", ">1")]["tf.nn"]["title"]
    assert rows[("dilation", "1")]["tf.nn"]["status"] == "native"
    assert rows[("padding", "same")]["torch.functional"]["status"] == "emulated"
    assert rows[("padding", "same")]["tf.nn"]["status"] == "untested"


# ---------------------------------------------------------------- reproducer paths

@pytest.mark.parametrize("case_id", ["../../etc/passwd", "a/b\\c", "..", ".hidden", "x" * 300, "ok[a=1,b=2x3]",
                                     "con:aux", "é"])
def test_repro_paths_stay_inside_the_report_folder(tmp_path, case_id):
    folder = repro_dir(tmp_path, case_id, "../mindspore.nn")
    assert (tmp_path / "repro").resolve() in folder.parents
    assert len(folder.name) <= 100 and "/" not in safe_name(case_id) and not safe_name(case_id).startswith(".")


def test_safe_names_keep_distinct_ids_apart():
    assert safe_name("a[x=1]") != safe_name("a_x=1_")
    assert safe_name("plain-id") == "plain-id"


# ---------------------------------------------------------------- a real failure, reproduced

MS_CASE = """
op: conv2d_transpose
cases:
  - id: ms-output-padding
    description: MindSpore fills output_padding rows with zeros (finding F2)
    input: [1, 2, 4, 4]
    out_channels: 2
    kernel_size: 3
    stride: 2
    padding: 1
    output_padding: 1
"""


@needs_mindspore
def test_repro_script_reproduces_a_real_mindspore_divergence(tmp_path):
    cases = write(tmp_path / "ms.yaml", MS_CASE)          # a file, not a folder: no registry, so it fails
    out = tmp_path / "out"
    proc = conform("run", cases, "--backends", "numpy,mindspore.nn", "--out", out, "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for name in ("report.json", "report.html", "junit.xml", "summary.md"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    ms = next(r for r in report["results"] if r["backend"] == "mindspore.nn")
    assert ms["verdict"] == "value_mismatch"
    assert ms["repro"] == "repro/ms-output-padding/mindspore.nn/repro.py"
    assert not any(r.get("repro") for r in report["results"] if r["backend"] == "numpy")   # passing: none
    folder = out / "repro" / "ms-output-padding" / "mindspore.nn"
    inputs = np.load(folder / "inputs.npz")
    assert {"x", "w", "y_ref", "B", "bound"} <= set(inputs.files)
    assert inputs["x"].shape == (1, 2, 4, 4) and inputs["y_ref"].shape == (1, 2, 8, 8)
    assert (folder / "diff.png").read_bytes().startswith(b"\x89PNG") and ms["heatmap"].endswith("diff.png")

    script = (folder / "repro.py").read_text()
    assert not re.search(r"^\s*(import|from)\s+(harness|conform)\b", script, re.M) and "import mindspore" in script
    assert "pad_mode='pad'" in script and "output_padding=(1, 1)" in script
    # Standalone: copied elsewhere with its inputs, run from another folder, no conform on the path.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("repro.py", "inputs.npz"):
        (elsewhere / name).write_bytes((folder / name).read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-I", str(elsewhere / "repro.py")], cwd="/", capture_output=True,
                         text=True, timeout=600, env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    printed = dict(re.findall(r"^(\w+): (.+)$", run.stdout, re.M))
    for key in ("max_abs_err", "max_rel_err", "mismatch_fraction", "bound_ratio"):
        assert float(printed[key]) == pytest.approx(float(ms["metrics"][key]), rel=1e-9), key
    assert json.loads(printed["worst_index"]) == ms["metrics"]["worst_index"]
    assert "verdict: value_mismatch" in run.stdout

    # The report links the reproducer and embeds the heatmap.
    page = (out / "report.html").read_text()
    data = json.loads(_embedded_json(page))
    detail = data["details"][report["results"].index(ms)]
    assert detail["repro"] == ms["repro"] and detail["heatmap"].startswith("data:image/png;base64,")

    # `conform report` re-renders into another folder; the link then points back to the report's folder.
    again = tmp_path / "again"
    proc = conform("report", out / "report.json", "--out", again)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(_embedded_json((again / "report.html").read_text()))
    link = data["details"][report["results"].index(ms)]["repro"]
    assert (again / link).resolve() == (folder / "repro.py").resolve()
    assert (again / "junit.xml").is_file() and (again / "summary.md").is_file()


# A compact matrix through every adapter path: padding forms, output_shape, NHWC, bias, groups, dilation.
FIDELITY_CASES = """
op: conv2d_transpose
defaults: {input: [1, 4, 5, 6], out_channels: 4, data: {seed: 5}}
cases:
  - id: fid
    kernel_size: [3, 2]
    matrix:
      stride: [1, 2]
      padding: [same, valid, 1, [1, 0, 0, 2]]
      layout: [NCHW, NHWC]
      bias: [false, true]
  - id: fid-shape-same
    kernel_size: 4
    stride: 2
    padding: same
    matrix: {output_shape: [[9, 11], [10, 12]]}
  - id: fid-shape-valid
    kernel_size: 4
    stride: 2
    padding: valid
    matrix: {output_shape: [[12, 14], [13, 15]]}
  - id: fid-shape-explicit
    kernel_size: 4
    stride: 2
    padding: [1, 1, 1, 1]
    matrix: {output_shape: [[10, 12], [11, 13]]}
  - id: fid-groups-dilation
    kernel_size: 3
    matrix:
      groups: [1, 2]
      dilation: [1, 2]
      padding: [same, 1]
      output_padding: [0]
"""


@needs_frameworks
def test_reproducers_come_from_the_program_each_adapter_ran(tmp_path):
    """Every result's native_call is rendered from the program the adapter ran; the program the adapter
    describes in the parent (what a crashed or timed-out call is reproduced from) is that same call."""
    from harness.backends import load_class, registry
    from harness.backends.program import native_call
    from harness.cases import load_suite
    from harness.runner import prepare
    cases_file = write(tmp_path / "fid.yaml", FIDELITY_CASES)
    out = tmp_path / "out"
    proc = conform("run", cases_file, "--out", out, "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads((out / "report.json").read_text())
    cases = {c.id: c for c in load_suite([cases_file])}
    checked = 0
    for r in report["results"]:
        if not r.get("native_call"):
            continue
        call, _ = prepare(cases[r["case"]])
        program = load_class(registry()[r["backend"]]).describe(call)
        assert program is not None, (r["backend"], r["case"])
        described = {native_call(program)} | ({native_call(program.fallback.program)} if program.fallback else set())
        assert r["native_call"] in described, (r["backend"], r["case"], r["native_call"], described)
        script = render_script(r, program, {"model": "error-bound"}, False)
        compile(script, "repro.py", "exec")
        assert f"# The adapter's call: {native_call(program)[:400]}" in script   # the header cuts at 400
        checked += 1
    assert checked >= 100 and {r["backend"] for r in report["results"]} >= set(FRAMEWORKS)


@needs_frameworks
def test_tf_repro_without_a_recorded_call_retries_in_nhwc_like_the_adapter(tmp_path):
    """An error result records no call: the script then poses it as the adapter does (NCHW, then NHWC)."""
    from harness.cases import load_suite
    from harness.report.repro import ReproWriter
    from harness.runner import prepare
    case = next(c for c in load_suite([write(tmp_path / "c.yaml", MS_CASE)]))
    call, reference = prepare(case)
    rec = record(case=case.id, backend="tf.nn", verdict="unexpected_error", native_call=None, metrics=None,
                 params=case.canonical_params())
    ReproWriter(tmp_path)(case, call, reference, rec, None)
    assert "repro_error" not in rec
    script = tmp_path / rec["repro"]
    assert "only supports NHWC" in script.read_text()
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "verdict: pass" in run.stdout, run.stdout + run.stderr   # TF agrees here


# ---------------------------------------------------------------- conform diff

def _diff_reports():
    old = [record(case="same"), record(case="worse"), record(case="better", verdict="value_mismatch"),
           record(case="gone"), record(case="xfail-to-fail", verdict="xfail"), record(case="unrun")]
    new = [record(case="same"), record(case="worse", verdict="crash", metrics=None),
           record(case="better"), record(case="new", verdict="shape_mismatch"),
           record(case="xfail-to-fail", verdict="value_mismatch"), record(case="unrun", verdict="skipped")]
    return report_of(old), report_of(new)


def test_diff_classifies_worse_better_new_gone():
    old, new = _diff_reports()
    changes = diff(old, new)
    names = {k: [e["case"] for e in v] for k, v in changes.items()}
    assert names == {"worse": ["worse", "xfail-to-fail"], "better": ["better"], "new": ["new"], "gone": ["gone"],
                     "unrun": ["unrun"], "intermittent": []}
    assert changes["worse"][0]["old"] == "pass" and changes["worse"][0]["new"] == "crash"
    assert severity("pass") < severity("xfail") < severity("value_mismatch") < severity("crash")


@pytest.mark.parametrize("what, expected_rc", [("worse", 1), ("better", 0), ("new", 0), ("gone", 0), ("same", 0)])
def test_diff_command_exits_1_only_when_something_became_worse(tmp_path, what, expected_rc):
    base = [record(case="a"), record(case="b", verdict="value_mismatch")]
    changed = copy.deepcopy(base)
    if what == "worse":
        changed[0]["verdict"] = "value_mismatch"
    elif what == "better":
        changed[1]["verdict"] = "pass"
    elif what == "new":
        changed.append(record(case="c", verdict="shape_mismatch"))
    elif what == "gone":
        changed.pop()
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(report_of(base)))
    new.write_text(json.dumps(report_of(changed)))
    proc = conform("diff", old, new)
    assert proc.returncode == expected_rc, proc.stdout + proc.stderr
    if what != "same":
        assert re.search(rf"^{what} \(1\):$", proc.stdout, re.M), proc.stdout
    changes = json.loads(conform("diff", old, new, "--json").stdout)
    assert {k: len(v) for k, v in changes.items() if v} == ({} if what == "same" else {what: 1})


def test_diff_lists_an_intermittent_divergence_that_came_or_went_but_not_as_worse(tmp_path):
    """F10 (oneDNN's corrupted workspace) gives a right gradient in one process and a wrong one in the next:
    pass <-> xfail under the same intermittent entry is listed, not a regression. Anything else still is."""
    shown = {"id": "F10-x", "link": "docs/findings.md#f10"}
    quiet = {**shown, "intermittent": True}
    old = [record(case="flaky", divergence=quiet), record(case="back", verdict="xfail", divergence=shown),
           record(case="not-marked", divergence={"id": "F10-x"}), record(case="other-entry", divergence=quiet)]
    new = [record(case="flaky", verdict="xfail", divergence=shown), record(case="back", divergence=quiet),
           record(case="not-marked", verdict="xfail", divergence=shown),
           record(case="other-entry", verdict="xfail", divergence={"id": "F2-y"})]
    changes = diff(report_of(old), report_of(new))
    assert [e["case"] for e in changes["intermittent"]] == ["flaky", "back"]
    assert [e["case"] for e in changes["worse"]] == ["not-marked", "other-entry"]
    old_path, new_path = tmp_path / "old.json", tmp_path / "new.json"
    old_path.write_text(json.dumps(report_of(old[:2])))
    new_path.write_text(json.dumps(report_of(new[:2])))
    proc = conform("diff", old_path, new_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^intermittent \(2\):\n .* flaky  pass -> xfail  \(F10-x: intermittent\)$", proc.stdout, re.M), \
        proc.stdout


def test_diff_and_report_reject_files_that_are_not_reports(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something/else", "results": []}')
    good = tmp_path / "good.json"
    good.write_text(json.dumps(report_of([record()])))
    for args in (("diff", bad, good), ("diff", good, tmp_path / "missing.json"), ("report", bad)):
        proc = conform(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_terminal_failure_lines_name_the_matching_or_resembling_entry():
    from rich.console import Console
    from harness.report.terminal import print_summary
    near = record(case="near", verdict="value_mismatch", reason="3% outside",
                  resembles={"id": "F2-x", "link": "l", "href": "file:///docs/findings.md#f2",
                             "failed_conditions": ["bias"]})
    fixed = record(case="fixed", verdict="xpass", divergence={"id": "F1-y", "reason": "r", "link": "l"})
    console = Console(record=True, width=200, force_terminal=True)
    print_summary(report_of([near, fixed, record()]), console)
    text = console.export_text(clear=False)
    assert "value_mismatch mindspore.nn near" in text and "resembles F2-x (differs in: bias)" in text
    assert "xpass mindspore.nn fixed" in text and "known divergence F1-y" in text
    assert "file:///docs/findings.md#f2" in console.export_html()   # the id is a terminal hyperlink


def test_junit_failure_text_names_the_resembled_entry():
    from harness.report.junit import _details
    near = record(case="near", verdict="value_mismatch",
                  resembles={"id": "F2-x", "link": "docs/findings.md#f2", "failed_conditions": ["bias"]})
    assert "resembles: F2-x (differs in: bias) docs/findings.md#f2" in _details(near).splitlines()


def test_diff_between_two_versions_of_a_surface_in_one_report(tmp_path):
    """``--between A B``: B against A case by case, plus cases whose outputs moved with the same verdict."""
    rows = [record(case="a", backend="ort@1"), record(case="a", backend="ort@2", version_delta={"ort@1": 0.5}),
            record(case="b", backend="ort@1"), record(case="b", backend="ort@2", verdict="value_mismatch"),
            record(case="c", backend="ort@1"), record(case="c", backend="ort@2", version_delta={"ort@1": 0.0})]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report_of(rows)))
    proc = conform("diff", path, "--between", "ort@1", "ort@2")
    assert proc.returncode == 1, proc.stdout + proc.stderr       # b became worse
    assert re.search(r"^worse \(1\):\n  ort@1 -> ort@2\s+b  pass -> value_mismatch", proc.stdout, re.M), proc.stdout
    assert re.search(r"^changed \(1\):\n  ort@1 -> ort@2\s+a  pass, outputs differ by up to 0.5$", proc.stdout,
                     re.M), proc.stdout
    unknown = conform("diff", path, "--between", "ort@1", "ort@3")
    assert unknown.returncode == 2 and "no results for ort@3" in unknown.stderr
    assert conform("diff", path).returncode == 2     # neither a second report nor --between


def test_version_deltas_compare_only_versions_of_one_surface():
    from harness.records import version_deltas
    y = np.array([1.0, np.nan, 3.0])
    deltas = version_deltas({"ort@1": y, "ort@2": y + [0, 0, 0.25], "tf.nn": y + 1})
    assert deltas == {"ort@1": {"ort@2": 0.25}, "ort@2": {"ort@1": 0.25}}
