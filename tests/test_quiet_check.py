"""``make quiet`` (benchmarks/quiet.py): what counts as explained, and a small real run end to end."""

from __future__ import annotations

import importlib.util

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("quiet_check", ROOT / "benchmarks" / "quiet.py")
quiet = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quiet)


def result(verdict, backend="mindspore.nn", case="fuzz-1-0"):
    return {"verdict": verdict, "backend": backend, "case": case, "dtype": "float16", "reason": "why",
            "params": {"input": [1, 1, 2, 2], "padding": "valid", "bias": False}}


def test_only_green_verdicts_count_as_explained(capsys):
    green = [result(v) for v in ("pass", "unsupported", "skipped", "xfail")]
    red = [result(v, case=f"fuzz-1-{i}") for i, v in enumerate(("value_mismatch", "shape_mismatch", "xpass", "crash"))]
    assert quiet.summarise(green, 1, 1.0) == []
    assert quiet.summarise(green + red, 1, 1.0) == red
    out = capsys.readouterr().out
    assert "unexplained: 4" in out and "mindspore.nn value_mismatch: 1" in out
    assert "value_mismatch mindspore.nn fuzz-1-0 float16 input=[1, 1, 2, 2] padding=valid: why" in out


def test_a_small_real_run_is_quiet(tmp_path, capsys):
    assert quiet.main(["--count", "3", "--seeds", "1,2", "--backends", "numpy", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cases: 6   results: 6" in out and "quiet: PASS" in out
