"""Framework-to-framework spread and what a failure shows (issue 10).

Pure functions on arrays and report records: how far apart two outputs are in
units of their bounds, which pair of frameworks a case reports, the worst
element's numbers in the metrics, and the plain words the terminal, summary.md
and report.html print for them. The browser half is tests/test_report_browser.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rich.console import Console

from harness.backends.base import Outcome
from harness.cases import load_file
from harness.compare import (Judgement, Reference, bound, framework_spread, judge, metrics_for, pair_distance,
                             tolerance_for)
from harness.report import explain, html, json_report, markdown, terminal
from harness.records import annotate_agreement, make_record
from harness.runner import prepare
from test_compare import REALISTIC, computed, setup_case
from test_reports import record, report_of

BF16_ACC = {"tf.nn": "bfloat16", "torch.functional": "float32", "mindspore.nn": "float32"}


# ---------------------------------------------------------------- pair_distance

def test_pair_distance_in_units_of_the_combined_and_the_tighter_bound():
    ya = np.zeros((1, 1, 2, 2))
    yb = ya.copy()
    yb[0, 0, 1, 0] = 0.3
    la, lb = np.full(ya.shape, 0.1), np.full(ya.shape, 0.2)
    d = pair_distance(ya, yb, la, lb)
    assert d == pytest.approx({"ratio": 1.0, "tighter_ratio": 3.0, "max_abs_diff": 0.3})
    assert pair_distance(ya, ya.copy(), la, lb) == {"ratio": 0.0, "tighter_ratio": 0.0, "max_abs_diff": 0.0}


def test_pair_distance_is_inf_for_nonfinite_mismatches_and_for_any_difference_where_a_bound_is_zero():
    la = lb = np.ones((1, 1, 1, 3))
    ya = np.array([[[[1.0, np.nan, np.inf]]]])
    assert pair_distance(ya, ya.copy(), la, lb)["ratio"] == 0.0             # same NaN/Inf positions: no distance
    yb = np.array([[[[1.5, 2.0, np.inf]]]])
    assert pair_distance(ya, yb, la, lb)["ratio"] == math.inf                # NaN against a number
    yb = np.array([[[[1.0, np.nan, -np.inf]]]])
    d = pair_distance(ya, yb, la, lb)
    assert d["ratio"] == d["tighter_ratio"] == math.inf and d["max_abs_diff"] == 0.0
    zero = np.zeros((1, 1, 1, 3))
    assert pair_distance(np.zeros((1, 1, 1, 3)), np.array([[[[0.0, 1e-30, 0.0]]]]), zero, zero)["ratio"] == math.inf


# ---------------------------------------------------------------- framework_spread

def test_spread_reports_the_pair_a_wide_bound_would_hide():
    """tf.nn declares bfloat16 accumulation (a wide bound), the others float32. tf.nn and MindSpore both
    pass; against their combined bound tf.nn looks close to everyone, against the tighter bound it is the
    one far from the rest, and that is the pair reported."""
    p, arrays, ref = setup_case(REALISTIC[0], "bfloat16")
    good = computed(p, arrays, "bfloat16")
    tight = bound(tolerance_for("bfloat16", ref.accumulation_length, None, "float32"), ref)
    wide = bound(tolerance_for("bfloat16", ref.accumulation_length, None, "bfloat16"), ref)
    i, j = (0, 0, 3, 3), (1, 2, 5, 5)
    tf, ms = good.copy(), good.copy()
    tf[i] = ref.output[i] + 0.2 * wide[i]              # within its own (wide) bound
    ms[j] = ref.output[j] + 0.9 * tight[j]             # within its own (tight) bound, close to it
    outputs = {"tf.nn": tf, "torch.functional": good, "mindspore.nn": ms}
    for name, y in outputs.items():                     # all three pass the oracle
        assert judge(Outcome("ok", output=y), ref, expects_error=False, dtype="bfloat16",
                     accumulation=BF16_ACC[name]).verdict == "pass", name
    spread = framework_spread(outputs, ref, "bfloat16", None, BF16_ACC)
    assert "tf.nn" in spread["pair"] and spread["frameworks"] == sorted(outputs)
    other = [b for b in spread["pair"] if b != "tf.nn"][0]
    expected = abs(tf[i] - outputs[other][i]) / min(wide[i], tight[i])
    assert spread["tighter_ratio"] == pytest.approx(expected, rel=1e-9) and spread["tighter_ratio"] > 5
    # Against the combined bound the same pair is well inside (and MindSpore vs torch would look worse).
    assert spread["ratio"] < 0.25
    assert pair_distance(ms, good, tight, tight)["ratio"] > spread["ratio"]


def test_spread_needs_two_outputs_and_counts_nonfinite_mismatches_as_inf():
    ref = Reference(output=np.ones((1, 1, 1, 2)), magnitude=np.ones((1, 1, 1, 2)), expected_shape=(1, 1, 1, 2))
    assert framework_spread({"tf.nn": np.ones((1, 1, 1, 2))}, ref, "float32") is None
    spread = framework_spread({"tf.nn": np.ones((1, 1, 1, 2)), "torch.functional": np.array([[[[1.0, np.nan]]]])},
                              ref, "float32")
    assert spread["pair"] == ["tf.nn", "torch.functional"] and spread["ratio"] == math.inf
    assert json.loads(json.dumps(json_report._clean(spread), allow_nan=False))["ratio"] == "inf"


def test_the_runner_leaves_in_house_kernels_out_of_the_spread(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("op: conv2d_transpose\ncases:\n  - id: c\n    input: [1, 2, 5, 5]\n    out_channels: 2\n"
                    "    kernel_size: 3\n    stride: 2\n")
    case = load_file(path)[0]
    _, ref = prepare(case)
    good = ref.output.astype(np.float32)
    way_off = good + 1.0                                  # numpy and numba far off: they must not be the pair
    outputs = {"numpy": way_off, "numba": -way_off, "tf.nn": good, "torch.functional": good.copy()}
    answered = [(make_record(case, b, Judgement("pass"), Outcome("ok", output=y)), Outcome("ok", output=y))
                for b, y in outputs.items()]
    annotate_agreement(case, ref, answered)
    spreads = [rec["spread"] for rec, _ in answered]
    assert all(s == spreads[0] for s in spreads)          # one spread per case, on every record of it
    assert spreads[0]["frameworks"] == ["tf.nn", "torch.functional"] and spreads[0]["max_abs_diff"] == 0.0


# ---------------------------------------------------------------- the worst element

def test_metrics_carry_the_worst_elements_values_and_bound():
    p, arrays, ref = setup_case(REALISTIC[1], "float32")
    y = computed(p, arrays, "float32")
    y[1, 3, 2, 4] += 1e-3
    tol = tolerance_for("float32", ref.accumulation_length)
    m = metrics_for(y, ref, tol, "float32")
    assert m["worst_index"] == [1, 3, 2, 4]
    assert m["worst_actual"] == float(y[1, 3, 2, 4]) and m["worst_expected"] == float(ref.output[1, 3, 2, 4])
    assert m["worst_bound"] == pytest.approx(float(bound(tol, ref)[1, 3, 2, 4]))
    assert m["bound_ratio"] == pytest.approx(abs(m["worst_actual"] - m["worst_expected"]) / m["worst_bound"])
    y[0, 0, 0, 0] = np.nan                                 # a NaN becomes the worst element, JSON-safe
    m = metrics_for(y, ref, tol, "float32")
    assert m["worst_index"] == [0, 0, 0, 0] and math.isnan(m["worst_actual"])
    assert json.loads(json.dumps(json_report._clean(m), allow_nan=False))["worst_actual"] == "nan"


# ---------------------------------------------------------------- plain words

BF16_TOL = {"model": "error-bound", "dtype": "bfloat16", "accumulation": "float32"}


def test_bound_ratio_gloss_says_what_the_number_means():
    assert explain.bound_gloss({"bound_ratio": 2.16}, BF16_TOL) == (
        "bound_ratio 2.16: the worst error is 2.16× the most a correct bfloat16 implementation, summing in "
        "float32, could err there; rounding cannot explain it.")
    assert "50% of the most a correct float32 implementation could err" in explain.bound_gloss(
        {"bound_ratio": 0.5}, {"model": "error-bound", "dtype": "float32", "accumulation": "float32"})
    assert "the case's own tolerance" in explain.bound_gloss({"bound_ratio": 3.0}, {"model": "override"})
    assert "NaN or ±Inf" in explain.bound_gloss({"bound_ratio": "inf", "nonfinite_mismatches": 2})
    assert "exactly 0" in explain.bound_gloss({"bound_ratio": "inf", "nonfinite_mismatches": 0})
    assert explain.bound_gloss({"bound_ratio": 0.0}) == "bound_ratio 0: every element equals the oracle's value."
    assert explain.bound_gloss({}) == "" and explain.bound_gloss(None) == ""


def test_worst_element_text():
    m = {"worst_index": [0, 1, 2, 3], "worst_actual": 0.5, "worst_expected": 0.25, "worst_bound": 0.01}
    assert explain.worst_element(m) == "at [0, 1, 2, 3]: 0.5, expected 0.25 (|diff| 0.25, bound 0.01)"
    assert explain.worst_element({**m, "worst_actual": "nan"}) == "at [0, 1, 2, 3]: nan, expected 0.25 (bound 0.01)"
    assert explain.worst_element({"worst_index": [0, 0, 0, 0]}) == ""     # a report from before these fields


SPREAD = {"pair": ["tf.nn", "torch.functional"], "ratio": 0.0167, "tighter_ratio": 13.1, "max_abs_diff": 1.0625,
          "frameworks": ["tf.nn", "torch.functional"]}


def _spread_report(**verdicts):
    return report_of([record(case="far", backend=b, verdict=v, spread=SPREAD, dtype="bfloat16")
                      for b, v in verdicts.items()])


def test_summary_lists_passing_frameworks_far_apart():
    text = markdown.render(_spread_report(**{"tf.nn": "pass", "torch.functional": "pass", "numpy": "pass"}))
    section = text[text.index("### Frameworks far apart"):]
    assert ("- `far`: tf.nn vs torch.functional: 13.1× apart in units of the tighter of their two bounds "
            "(max \\|Δ\\| 1.062; 0.0167× their combined bound), both within the oracle's bound") in section


def test_summary_leaves_out_pairs_with_a_failure_and_pairs_that_are_close():
    failing = markdown.render(_spread_report(**{"tf.nn": "value_mismatch", "torch.functional": "pass"}))
    assert "Frameworks far apart" not in failing           # the failure itself is listed as one
    close = report_of([record(case="near", backend=b, spread={**SPREAD, "tighter_ratio": 0.9})
                       for b in ("tf.nn", "torch.functional")])
    assert "Frameworks far apart" not in markdown.render(close)


def test_terminal_failure_lines_show_the_worst_element_and_the_gloss():
    metrics = {"max_abs_err": 0.5, "max_rel_err": 1.0, "max_ulp": 9.0, "mismatch_fraction": 0.1,
               "worst_index": [0, 0, 1, 2], "bound_ratio": 2.16, "nonfinite_mismatches": 0,
               "worst_actual": 1.25, "worst_expected": 0.75, "worst_bound": 0.2315}
    report = report_of([record(verdict="value_mismatch", metrics=metrics, tolerance=BF16_TOL)])
    console = Console(width=400, record=True, color_system=None)
    terminal.print_summary(report, console)
    text = console.export_text()
    assert "worst element at [0, 0, 1, 2]: 1.25, expected 0.75 (|diff| 0.5, bound 0.2315)" in text
    assert "2.16× the most a correct bfloat16 implementation, summing in float32, could err there" in text


def test_html_page_data_carries_the_spread_the_gloss_and_a_safe_divergence_link(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "findings.md").write_text("# F2\n")
    out = tmp_path / "reports"
    results = [record(case="far", backend=b, spread=SPREAD) for b in ("tf.nn", "torch.functional")]
    results.append(record(case="x", backend="mindspore.nn", verdict="xfail", original_verdict="value_mismatch",
                          divergence={"id": "F2", "reason": "r", "link": "docs/findings.md#f2"}))
    results.append(record(case="y", backend="mindspore.nn", verdict="xfail", original_verdict="value_mismatch",
                          divergence={"id": "F9", "reason": "r", "link": "javascript:alert(1)"}))
    results.append(record(case="z", backend="mindspore.nn", verdict="xfail", original_verdict="value_mismatch",
                          divergence={"id": "F1", "reason": "r", "link": "https://example.org/f1"}))
    data = html.page_data(report_of(results), out, "", out)
    spread = data["cases"][0][7]
    assert spread["pair"] == ["tf.nn", "torch.functional"] and "both within the oracle's bound" in spread["line"]
    assert data["cases"][1][7] is None
    assert "gloss" not in data["details"][0]                # a pass keeps its numbers, not the words
    assert data["details"][2]["gloss"].startswith("bound_ratio 0.05: the worst error is 5% of")
    assert data["details"][2]["divergence"]["href"] == "../docs/findings.md#f2"
    assert "href" not in data["details"][3]["divergence"]
    assert data["details"][4]["divergence"]["href"] == "https://example.org/f1"
