"""summary.md: a short Markdown summary for a CI job page (e.g. ``$GITHUB_STEP_SUMMARY``).

The gate, a backend × verdict count table (every result: forward and
gradient), when the run has gradient results a forward / gradient split of it
per backend, the failure groups (one line per shared pattern) and the first
failing results (a gradient result named ``case · ∂x``). Every string from a case file
is escaped for Markdown and HTML (case ids go in code spans).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.report import atomic_write
from harness.report import claims as claim_reports
from harness.report.analysis import VERDICT_ORDER, failure_groups, top_failures
from harness.report.explain import FAR_APART, bound_gloss, far_apart, spread_line, worst_element
from harness.report.gradients import count_text, has_gradients, label, split_counts
from harness.report.html import format_ratio
from harness.text import printable

MAX_GROUPS = 10
MAX_FAILURES = 15
MAX_FAR_APART = 10


def _escape(text) -> str:
    """Text safe in a Markdown table cell: no HTML, no table breaks, no emphasis or links."""
    text = printable(str(text if text is not None else "").replace("\r", " ").replace("\n", " "))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)


def _code(text) -> str:
    """A code span that cannot be broken out of (backticks in the text get a longer fence)."""
    text = printable(str(text).replace("\r", " ").replace("\n", " ")).replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render(report: dict, max_failures: int = MAX_FAILURES) -> str:
    results = report.get("results") or []
    gate = report.get("gate") or {}
    passed = gate.get("passed")
    lines = [f"## conform: {'✅ gate passed' if passed else '❌ gate FAILED'}"
             + (" (strict)" if gate.get("strict") else "") + (" — incomplete run" if report.get("incomplete") else ""),
             ""]
    by_backend = (report.get("summary") or {}).get("by_backend") or {}
    present = {v for counts in by_backend.values() for v in counts}
    verdicts = [v for v in VERDICT_ORDER if v in present] + sorted(present - set(VERDICT_ORDER))
    envs = (report.get("environment") or {}).get("backends") or {}
    duration = report.get("duration_s")
    lines.append(f"{len(results)} results"
                 + (f" in {duration:.1f} s" if isinstance(duration, (int, float)) else "")
                 + f" · created {_escape(report.get('created') or '-')}")
    lines.append("")
    if by_backend:
        lines.append("| backend | version | " + " | ".join(verdicts) + " |")
        lines.append("| --- | --- | " + " | ".join("---:" for _ in verdicts) + " |")
        for backend, counts in by_backend.items():
            version = (envs.get(backend) or {}).get("version") or "-"
            lines.append(f"| {_code(backend)} | {_escape(version)} | "
                         + " | ".join(str(counts.get(v, "")) for v in verdicts) + " |")
        lines.append("")
    lines += _split(results)
    groups = [g for g in failure_groups(results) if g["verdict"] not in ("unsupported", "xfail")]
    if groups:
        lines += ["### Failures by shared pattern", ""]
        for g in groups[:MAX_GROUPS]:
            share = (f"{g['count']} of {g['matching']} with this pattern" if g["pattern"]
                     else "scattered: no parameter value singles them out")
            lines.append(f"- {_code(g['verdict'])} {_code(g['label'])}: {g['count']} result"
                         f"{'s' if g['count'] != 1 else ''} ({share})")
        if len(groups) > MAX_GROUPS:
            lines.append(f"- … and {len(groups) - MAX_GROUPS} more groups in report.html")
        lines.append("")
    failing, n_failing = top_failures(results, max_failures)
    if failing:
        lines += ["### Top failures", "", "| verdict | backend | case | bound_ratio | reason | worst element |",
                  "| --- | --- | --- | ---: | --- | --- |"]
        for r in failing:
            metrics = r.get("metrics") or {}
            worst = ". ".join(t for t in (worst_element(metrics), bound_gloss(metrics, r.get("tolerance"))) if t)
            lines.append(f"| {_code(r['verdict'])} | {_code(r['backend'])} | {_code(label(r))} | "
                         f"{_escape(format_ratio(metrics.get('bound_ratio')))} | "
                         f"{_escape((r.get('reason') or '')[:160])} | {_escape(worst)} |")
        if n_failing > max_failures:
            lines.append("")
            lines.append(f"… and {n_failing - max_failures} more failing results in report.html / junit.xml.")
        lines.append("")
    lines += _far_apart(results)
    lines += claim_reports.markdown(report)
    stale = report.get("stale_divergences") or []
    if stale:
        lines.append(f"{len(stale)} stale known divergence(s): " + ", ".join(_code(s.get("id")) for s in stale))
        lines.append("")
    return "\n".join(lines)


def _split(results: list[dict]) -> list[str]:
    """Forward and gradient results per backend, each as ``120 pass, 3 value_mismatch`` (runs with gradients)."""
    if not has_gradients(results):
        return []
    lines = ["| backend | forward | gradients |", "| --- | --- | --- |"]
    for backend, sides in split_counts(results).items():
        lines.append(f"| {_code(backend)} | {_escape(count_text(sides['forward'], VERDICT_ORDER))} | "
                     f"{_escape(count_text(sides['gradient'], VERDICT_ORDER))} |")
    return lines + [""]


def _far_apart(results: list[dict]) -> list[str]:
    found = far_apart(results)
    if not found:
        return []
    lines = ["### Frameworks far apart, both within the oracle's bound", "",
             f"Cases whose two furthest frameworks differ by more than {FAR_APART:g}× the tighter of their two "
             "bounds (a test calibrated on the more precise one would reject the other), although the oracle "
             "passes both:", ""]
    for case, spread, verdicts in found[:MAX_FAR_APART]:
        lines.append(f"- {_code(case)}: {_escape(spread_line(spread, verdicts))}")
    if len(found) > MAX_FAR_APART:
        lines.append(f"- … and {len(found) - MAX_FAR_APART} more cases in report.json (`spread`)")
    return lines + [""]


def write(report: dict, out: Path) -> Path:
    path = Path(out) / "summary.md"
    atomic_write(path, render(report))
    return path
