"""Coverage by construction: the level classifier, the pairwise generator and ``conform coverage``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import coverage, ops
from harness.cases import load_suite
from harness.ops.conv2d_transpose import semantics
from harness.pairwise import for_op, main as pairwise_main, operator_fields

OP = "conv2d_transpose"
REQUIRED = ops.get(OP).coverage.required
classify = ops.get(OP).coverage.classify
pairwise = for_op(OP)


def required_pairs():
    return pairwise.required_pairs()

ROOT = Path(__file__).resolve().parents[1]
INFEASIBLE = {(("padding", "same"), ("output_padding", "1")), (("padding", "valid"), ("output_padding", "1"))}


def params(**kw):
    base = dict(input=[1, 4, 5, 6], out_channels=4, kernel_size=3)
    return semantics.Params.model_validate(base | kw).model_dump()


# --------------------------------------------------------------------------- classify


def test_classify_levels():
    lv = classify(params(groups=4, stride=2, output_padding=1, padding=[1, 0, 0, 2]), "float16",
                  {"x": "impulse"})
    assert lv["groups"] == {"4", "C_in"}
    assert lv["output_padding"] == {"1", "s-1"}          # s = 2: 1 is also s − 1
    assert lv["padding"] == {"asymmetric"}
    assert lv["stride"] == {"2"} and lv["dtype"] == {"float16"} and lv["data"] == {"impulse"}
    lv = classify(params(kernel_size=[3, 2], padding=1, layout="NHWC", input=[1, 5, 6, 4]), "float32")
    assert lv["kernel_size"] == {"non-square"} and lv["padding"] == {"symmetric"}
    assert lv["layout"] == {"NHWC"} and lv["groups"] == {"1"}
    assert lv["output_padding"] == {"0", "s-1"}          # s = 1: s − 1 = 0
    lv = classify(params(stride=3, output_padding=[2, 0], padding=0), "float32")
    assert lv["output_padding"] == {"2", "s-1", "0"}     # each axis exercises its own value
    assert classify(params(padding="same"), "float32")["padding"] == {"same"}
    assert classify(params(stride=[1, 2]), "float32")["stride"] == {"1x2"}     # an extra level


def test_required_pairs_count():
    sizes = [len(v) for v in REQUIRED.values()]
    expected = sum(a * b for i, a in enumerate(sizes) for b in sizes[i + 1:])
    assert len(required_pairs()) == expected


# --------------------------------------------------------------------------- the generator


@pytest.fixture(scope="module")
def rows():
    return pairwise.generate()


def test_every_generated_row_is_a_valid_call(rows):
    for row in rows:
        fields = pairwise.concrete(row)
        semantics.resolve(semantics.Params.model_validate(operator_fields(fields)))


def test_generated_rows_cover_every_feasible_pair_and_only_infeasible_ones_are_missing(rows):
    covered = set().union(*(pairwise.covered_by(pairwise.concrete(r)) for r in rows))
    missing = set(required_pairs()) - covered
    assert missing == INFEASIBLE
    for pair in missing:
        assert not pairwise.feasible(dict(pair))
        reason = pairwise.explain_uncovered(pair)
        assert reason.startswith("not expressible") and "does not combine with padding" in reason


def test_each_limited_backend_gets_every_pair_it_can_run(rows):
    sp = pairwise.space
    for backend, mask in sp.runnable.items():
        runnable_rows = [r for r in rows if pairwise.runs_on(r, mask)]
        covered = set().union(*(pairwise.covered_by(pairwise.concrete(r)) for r in runnable_rows))
        wanted = {p for p in required_pairs() if pairwise.feasible(dict(p), mask)}
        assert wanted <= covered, (backend, sorted(wanted - covered)[:5])
        # and its limits do remove pairs (the capability table is not vacuous)
        assert wanted < {p for p in required_pairs() if pairwise.feasible(dict(p))}


def test_generator_is_deterministic_and_small(rows):
    assert pairwise.generate() == rows
    ids = [pairwise.case_id_of(pairwise.concrete(r)) for r in rows]
    assert len(ids) == len(set(ids))
    assert len(rows) < 100                    # the full product is 103680


def test_feasibility_uses_the_semantics():
    assert pairwise.feasible({"padding": "symmetric", "output_padding": "1"})
    assert not pairwise.feasible({"padding": "same", "output_padding": "1"})
    # output_padding 1 at stride 1 needs dilation 2
    assert pairwise.feasible({"stride": "1", "output_padding": "1"})
    assert not pairwise.feasible({"stride": "1", "output_padding": "1", "dilation": "1"})
    assert "feasible but not in the suite" in pairwise.explain_uncovered((("stride", "1"), ("dilation", "2")))


def test_pairwise_check_flag(tmp_path):
    out = tmp_path / "p.yaml"
    out.write_text(pairwise.render(pairwise.generate()), encoding="utf-8")
    assert pairwise_main([OP, "--check", str(out)]) == 0
    out.write_text("stale\n", encoding="utf-8")
    assert pairwise_main([OP, "--check", str(out)]) == 1


# --------------------------------------------------------------------------- the suite and the command


def test_the_default_suite_covers_every_expressible_pair():
    cov = coverage.measure(load_suite([str(ROOT / "cases" / "conv2d_transpose")]))
    uncovered = {p for p in required_pairs() if not cov.pairs.get(p)}
    # INFEASIBLE under TensorFlow's size rule, but the suite poses them under Keras' (size_rule.yaml)
    assert uncovered == set()
    assert all(cov.pairs[p] for p in INFEASIBLE)
    assert cov.error_cases >= 20


@pytest.mark.parametrize("op", ["avg_pool2d", "max_pool2d"])
def test_the_pooling_suites_cover_every_pair(op):
    cov = coverage.measure(load_suite([str(ROOT / "cases" / op)]))
    assert not {p for p in for_op(op).required_pairs() if not cov.pairs.get(p)}
    assert cov.error_cases >= 5


def _fake_report(suite, backends):
    results = []
    for case in suite:
        for b in backends:
            verdict = "unsupported" if (b == "limited" and case.dtype == "float64") else "pass"
            results.append({"case": case.id, "backend": b, "verdict": verdict,
                            "reason": "no float64 kernel" if verdict == "unsupported" else ""})
    return {"environment": {"backends": {b: {} for b in backends}}, "results": results}


def test_measure_with_a_report_counts_backends_that_ran():
    suite = load_suite([str(ROOT / "cases" / "conv2d_transpose" / "dtypes.yaml")])
    cov = coverage.measure(suite, _fake_report(suite, ["full", "limited"]))
    ids = cov.values[("dtype", "float64")]
    assert ids and cov.ran(ids) == {"full": len(ids), "limited": 0}
    text = coverage.render(cov)
    assert "limited:" in text and "no float64 kernel" in text
    assert "dtype=float64" in text


def test_an_unsupported_gradient_does_not_hide_a_forward_call_that_ran():
    suite = load_suite([str(ROOT / "cases" / "conv2d_transpose" / "dtypes.yaml")])
    report = _fake_report(suite, ["full"])
    # Backward mode: the forward results ran, the gradient results after them are unsupported.
    report["results"] = report["results"] + [{**r, "gradient": "w", "verdict": "unsupported"}
                                             for r in report["results"]]
    ids = coverage.measure(suite, report).values[("dtype", "float64")]
    assert ids and coverage.measure(suite, report).ran(ids) == {"full": len(ids)}


def test_conform_coverage_command(tmp_path):
    suite = load_suite([str(ROOT / "cases" / "conv2d_transpose" / "pairwise.yaml")])
    report = tmp_path / "report.json"
    report.write_text(json.dumps(_fake_report(suite, ["a", "b"])), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "harness", "coverage", "cases/conv2d_transpose/pairwise.yaml",
                           "--report", str(report), "--summary"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Value pairs: 510 of 512 required pairs covered" in proc.stdout
    assert "padding=same × output_padding=1: not expressible" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "harness", "coverage", "cases/conv2d_transpose/pairwise.yaml",
                           "--report", str(report), "--json"], cwd=ROOT, capture_output=True, text=True)
    data = json.loads(proc.stdout)["operators"][OP]
    assert len(data["uncovered"]) == 2 and data["backends"] == ["a", "b"]
    proc = subprocess.run([sys.executable, "-m", "harness", "coverage", "--report", str(tmp_path / "nope.json")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_the_conv2d_suite_covers_every_pair():
    cov = coverage.measure(load_suite([str(ROOT / "cases" / "conv2d")]))
    assert not [p for p in for_op("conv2d").required_pairs() if not cov.pairs.get(p)]
    assert cov.error_cases >= 10
