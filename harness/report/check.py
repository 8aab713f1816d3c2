"""Reading a saved report.json for re-rendering (``conform report``): older versions and odd field types.

``normalize`` returns a report every renderer can take, or raises
``ReportError`` (exit 2) naming the first field that has the wrong type as
``path: results[3].verdict: expected a string, got int``. Fields a report of
an older conform lacks (``gate``, ``incomplete``, ``summary``,
``stale_divergences``, ``reason``, ``dtype``, ...) are filled in: the gate
is recomputed from the results when missing and the summary always, as
``conform run`` computes them.
"""

from __future__ import annotations

from harness.report.diff import ReportError
from harness.report.json_report import gate_passes, summarize
from harness.report.safe_text import clean

_TYPES = {str: "a string", int: "an integer", dict: "a mapping", list: "a list", bool: "true or false"}

#: Per-result fields and their types (None is always allowed except for the first three).
_RESULT_FIELDS = {"case": str, "backend": str, "verdict": str, "file": str, "line": int, "op": str, "params": dict,
                  "dtype": str, "reason": str, "expected_shape": list, "actual_shape": list, "metrics": dict,
                  "tolerance": dict, "error": dict, "native_call": str, "notes": list, "source": str,
                  "description": str, "repro": str, "heatmap": str, "divergence": dict, "agrees_with": list}


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _expect(path, where: str, value, kind) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ReportError(f"{path}: {where}: expected {_TYPES[kind]}, got {_kind(value)}")


def normalize(report: dict, path) -> dict:
    """A copy of ``report`` (already a ``conform.report/1`` mapping with a results list) safe to render."""
    report = clean(report)
    for key, kind in (("environment", dict), ("gate", dict), ("summary", dict), ("stale_divergences", list)):
        if report.get(key) is not None:
            _expect(path, key, report[key], kind)
    for key in ("created", "schema"):
        if report.get(key) is not None:
            _expect(path, key, report[key], str)
    if report.get("duration_s") is not None and not isinstance(report["duration_s"], (int, float)):
        raise ReportError(f"{path}: duration_s: expected a number, got {_kind(report['duration_s'])}")
    results = report["results"]
    for i, r in enumerate(results):
        _expect(path, f"results[{i}]", r, dict)
        for field, kind in _RESULT_FIELDS.items():
            if field in ("case", "backend", "verdict") or r.get(field) is not None:
                _expect(path, f"results[{i}].{field}", r.get(field), kind)
        for j, entry in enumerate(r.get("notes") or []):
            _expect(path, f"results[{i}].notes[{j}]", entry, str)
    backends = (report.get("environment") or {}).get("backends")
    if backends is not None:
        _expect(path, "environment.backends", backends, dict)
        for name, entry in backends.items():
            _expect(path, f"environment.backends.{name}", entry, dict)
    for i, entry in enumerate(report.get("stale_divergences") or []):
        _expect(path, f"stale_divergences[{i}]", entry, dict)
    report.setdefault("incomplete", False)
    report["environment"] = report.get("environment") or {"backends": {}}
    report["stale_divergences"] = report.get("stale_divergences") or []
    if not report.get("gate"):
        report["gate"] = {"passed": gate_passes(results), "strict": False}
    if report["incomplete"]:   # written before an incomplete run was made to fail the gate
        report["gate"] = {**report["gate"], "passed": False}
    report["summary"] = summarize(results)       # derived data: recomputed rather than trusted
    return report
