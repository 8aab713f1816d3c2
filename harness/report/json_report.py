"""report.json: the machine-readable record of a run (schema ``conform.report/1``)."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from harness.compare import GREEN
from harness.report import atomic_write
from harness.report import claims as claim_reports

SCHEMA = "conform.report/1"


def summarize(results: list[dict]) -> dict:
    by_backend: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_backend[r["backend"]][r["verdict"]] += 1
    return {"by_verdict": dict(sorted(Counter(r["verdict"] for r in results).items())),
            "by_backend": {b: dict(sorted(c.items())) for b, c in by_backend.items()}}


def gate_passes(results: list[dict], strict: bool = False, stale: list | None = None) -> bool:
    """Exit-code rule of DESIGN.md §6; ``--strict`` also fails on xpass and stale registry entries."""
    green = GREEN if strict else GREEN | {"xpass"}
    return all(r["verdict"] in green for r in results) and not (strict and stale)


def _clean(value):
    """JSON has no inf/nan: write them as strings so the file stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def build(run, strict: bool = False, claims: list | None = None) -> dict:
    """The report of a run. ``gate.passed`` is decided here, once: every reporter and the exit code read it,
    and an incomplete run (interrupted) never passes, whatever its finished results say. ``claims``: the
    claim records (``harness.claims``); a claim that fails its own gate fails the run's."""
    claims = claims or []
    report = {
        "schema": SCHEMA,
        "created": run.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": run.duration_s,
        "incomplete": run.incomplete,
        # An interrupted run judged only part of the plan: it cannot pass the gate.
        "gate": {"passed": not run.incomplete and gate_passes(run.results, strict, run.stale)
                 and claim_reports.gate_passes(claims), "strict": strict},
        "environment": run.environment,
        "summary": summarize(run.results),
        "stale_divergences": run.stale,
        "timing": getattr(run, "timing", None) or None,
        "results": _clean(run.results),
    }
    if claims:
        report["claims_summary"] = claim_reports.summary(claims)
        report["claims"] = _clean(claims)
    return report


def render(report: dict) -> str:
    # Compact: a 10,000-result report stays a few MB; `python -m json.tool` pretty-prints it.
    return json.dumps(report, separators=(",", ":")) + "\n"


def write(report: dict, out: Path) -> Path:
    path = out / "report.json"
    atomic_write(path, render(report))
    return path
