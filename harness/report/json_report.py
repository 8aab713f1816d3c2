"""report.json: the machine-readable record of a run (schema ``conform.report/1``).

A run's ``results`` may be a lazy sequence read from its journal (``harness.results``, Note [Results on
disk]): ``build`` wraps it in a cleaning view instead of copying it, and ``write_to`` streams the results
array one record at a time, so the text equals ``render``'s without the whole report in memory.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterable

from harness.compare import GREEN
from harness.report import atomic_write, write_json_object
from harness.report import claims as claim_reports
from harness.results import Mapped, Results
from harness.text import clean

SCHEMA = "conform.report/1"


def summarize(results: Iterable[dict]) -> dict:
    by_backend: dict[str, Counter] = defaultdict(Counter)
    by_verdict: Counter = Counter()
    for r in results:
        by_backend[r["backend"]][r["verdict"]] += 1
        by_verdict[r["verdict"]] += 1
    return {"by_verdict": dict(sorted(by_verdict.items())),
            "by_backend": {b: dict(sorted(c.items())) for b, c in by_backend.items()}}


def gate_passes(results: Iterable[dict], strict: bool = False, stale: list | None = None) -> bool:
    """Exit-code rule of DESIGN.md §6; ``--strict`` also fails on xpass and stale registry entries."""
    green = GREEN if strict else GREEN | {"xpass"}
    return all(r["verdict"] in green for r in results) and not (strict and stale)


def _summary_passes(summary: dict, strict: bool, stale: list | None) -> bool:
    """``gate_passes`` from the verdict counts (one pass less over a run's results)."""
    green = GREEN if strict else GREEN | {"xpass"}
    return all(v in green for v in summary["by_verdict"]) and not (strict and stale)


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
    summary = summarize(run.results)
    report = {
        "schema": SCHEMA,
        "created": run.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": run.duration_s,
        "incomplete": run.incomplete,
        # An interrupted run judged only part of the plan: it cannot pass the gate.
        "gate": {"passed": not run.incomplete and _summary_passes(summary, strict, run.stale)
                 and claim_reports.gate_passes(claims), "strict": strict},
        "environment": run.environment,
        "summary": summary,
        "stale_divergences": run.stale,
        "timing": getattr(run, "timing", None) or None,
        "results": cleaned(run.results),
    }
    if claims:
        report["claims_summary"] = claim_reports.summary(claims)
        report["claims"] = _clean(claims)
    return report


def cleaned(results: Sequence[dict]) -> Sequence[dict]:
    """``results`` as report.json holds them: inf/NaN as strings, lone surrogates replaced (``harness.text``).

    A list is cleaned at once; any other sequence (a run's journal) through a view, record by record."""
    if isinstance(results, list):
        return _clean(results)
    if isinstance(results, Results):
        return results.mapped(lambda record: clean(_clean(record)), when=_may_need_cleaning)
    return Mapped(results, lambda record: clean(_clean(record)))


def _may_need_cleaning(line: bytes) -> bool:
    """Whether a journal line (``json.dumps``, ASCII) may hold a non-finite float or a lone surrogate."""
    return b"NaN" in line or b"Infinity" in line or b"\\ud" in line or b"\\uD" in line


def write_to(handle: IO[str], report: dict) -> None:
    """Write ``render(report)`` to ``handle``, the results array one record at a time."""
    # Compact: a 10,000-result report stays a few MB; `python -m json.tool` pretty-prints it.
    write_json_object(handle, report.items(), json.JSONEncoder(separators=(",", ":")).encode, streamed=("results",))
    handle.write("\n")


def render(report: dict) -> str:
    text = io.StringIO()
    write_to(text, report)
    return text.getvalue()


def write(report: dict, out: Path) -> Path:
    path = out / "report.json"
    atomic_write(path, render(report))
    return path
