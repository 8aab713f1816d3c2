"""Reading a saved report.json for re-rendering (``conform report``): older versions and odd field types.

``normalize`` takes a report ``diff.load`` has read and type-checked
(``harness.report.schema``: a wrong type is ``ReportError``, exit 2, naming
``results[3].verdict: expected a string, got int``) and returns one every
renderer can take. Fields a report of
an older conform lacks (``gate``, ``incomplete``, ``summary``,
``stale_divergences``, ``reason``, ``dtype``, ...) are filled in: the gate
is recomputed from the results when missing and the summary always, as
``conform run`` computes them.
"""

from __future__ import annotations

from harness.report.json_report import gate_passes, summarize
from harness.text import clean


def normalize(report: dict) -> dict:
    """A copy of ``report`` (already a ``conform.report/1`` mapping with a results list) safe to render."""
    report = clean(report)
    results = report["results"]
    report.setdefault("incomplete", False)
    report["environment"] = report.get("environment") or {"backends": {}}
    report["stale_divergences"] = report.get("stale_divergences") or []
    if not report.get("gate"):
        report["gate"] = {"passed": gate_passes(results), "strict": False}
    if report["incomplete"]:   # written before an incomplete run was made to fail the gate
        report["gate"] = {**report["gate"], "passed": False}
    report["summary"] = summarize(results)       # derived data: recomputed rather than trusted
    return report
