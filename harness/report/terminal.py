"""The terminal summary: a verdict × backend table and the non-passing results.

The table counts every result; a run with gradient results adds one line per
backend splitting them (``forward: 40 pass · gradients: 120 pass, 3
value_mismatch``), and a failing gradient result is named ``case · ∂x``.

Every string from a case file, registry or framework goes through ``_t``:
rich markup escaped and control characters shown as escapes (``harness.text.printable``),
so a case id cannot restyle or move the cursor of the terminal.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.compare import GREEN
from harness.report import claims as claim_reports
from harness.report.explain import bound_gloss, worst_element
from harness.report.gradients import count_text, has_gradients, label, split_counts
from harness.text import printable

VERDICT_ORDER = ["pass", "xfail", "unsupported", "skipped", "shape_mismatch", "value_mismatch",
                 "unexpected_error", "missing_error", "crash", "timeout", "xpass"]
STYLE = {"pass": "green", "xfail": "cyan", "unsupported": "yellow", "skipped": "dim"}


def _t(value) -> str:
    return escape(printable(value))


def print_summary(report: dict, console: Console, max_failures: int = 30) -> None:
    by_backend = report["summary"]["by_backend"]
    verdicts = [v for v in VERDICT_ORDER if v in report["summary"]["by_verdict"]]
    table = Table(title=f"conform: {len(report['results'])} results in {report['duration_s']:.1f} s")
    table.add_column("backend")
    table.add_column("version")
    for v in verdicts:
        table.add_column(v, justify="right", style=STYLE.get(v, "bold red"))
    for backend, counts in by_backend.items():
        env = report["environment"]["backends"].get(backend, {})
        table.add_row(_t(backend), _t(env.get("version") or "-"), *[str(counts.get(v, "")) for v in verdicts])
    console.print(table)
    if has_gradients(report["results"]):
        for backend, sides in split_counts(report["results"]).items():
            console.print(f"{_t(backend)}: forward: {_t(count_text(sides['forward'], VERDICT_ORDER))} · "
                          f"gradients: {_t(count_text(sides['gradient'], VERDICT_ORDER))}",
                          highlight=False, soft_wrap=True)
    for line in version_lines(report):
        console.print(line, highlight=False, soft_wrap=True)
    failing: list[dict] = []     # the first ``max_failures``: a run's results are read from disk, not kept
    n_failing = 0
    for r in report["results"]:
        if r["verdict"] not in GREEN:
            n_failing += 1
            if len(failing) < max_failures:
                failing.append(r)
    for r in failing:
        console.print(f"[bold red]{_t(r['verdict'])}[/] {_t(r['backend'])} {_t(label(r))}  "
                      f"[dim]{_t(r['file'])}:{_t(r['line'])}[/]  {_t(r.get('reason'))}" + registry_note(r),
                      highlight=False, soft_wrap=True)
        if r.get("metrics") and r["metrics"].get("worst_index") is not None:
            # The numbers behind the verdict, and what the ratio means, on one indented line.
            console.print(f"    [dim]worst element {_t(worst_element(r['metrics']))}. "
                          f"{_t(bound_gloss(r['metrics'], r.get('tolerance')))}[/]",
                          highlight=False, soft_wrap=True)
    if n_failing > max_failures:
        console.print(f"... and {n_failing - max_failures} more in report.json")
    for entry in report.get("stale_divergences", []):
        console.print(f"[yellow]stale known divergence[/] {_t(entry['id'])} "
                      f"[dim]{_t(entry['file'])}:{_t(entry['line'])}[/]: {_t(entry['reason'])}", highlight=False)
    for line in claim_reports.lines(report):
        console.print(printable(line), highlight=False, soft_wrap=True, markup=False)
    if report.get("timing"):
        console.print(timing_line(report["timing"]), highlight=False, soft_wrap=True, markup=False)
    gate = report["gate"]
    console.print(("[green]gate: pass[/]" if gate["passed"] else "[bold red]gate: FAIL[/]")
                  + (" (incomplete run)" if report.get("incomplete") else ""))


def timing_line(timing: dict) -> str:
    """The run's throughput and its distance from the lower bound (Note [Throughput] in harness/timing.py)."""
    return "timing: " + timing_text(timing)


def timing_text(t: dict) -> str:
    text = f"{t['results']} results in {t['wall_s']:.1f} s ({t['results_per_s']}/s)"
    if t.get("wall_over_bound"):
        work = t.get("cpu_s", t.get("worker_s"))   # reports before the CPU clock had worker wall time only
        text += (f"; the backends' CPU time {work:.1f} s ÷ {min(t['jobs'], t['cores'])} cores = "
                 f"{t['lower_bound_s']:.1f} s, wall {t['wall_over_bound']:.2f}× that")
        if t.get("parent_cpu_s") is not None:
            text += f"; the parent's CPU {t['parent_cpu_s']:.1f} s"
    return text


def version_lines(report: dict) -> list[str]:
    """One line per pair of consecutive versions of a surface in this run (``conform diff --between``)."""
    from harness.backends import split_version
    from harness.report.diff import between

    by_surface: dict[str, list[str]] = {}
    for backend in report["summary"]["by_backend"]:
        by_surface.setdefault(split_version(backend)[0], []).append(backend)
    lines = []
    for versions in by_surface.values():
        for a, b in zip(versions, versions[1:]):
            changes = between(report, a, b)
            largest = max((e["max_abs_diff"] for e in changes["changed"]), default=0.0)
            lines.append(f"{_t(a)} -> {_t(b)}: {len(changes['worse'])} worse, {len(changes['better'])} better, "
                         f"{len(changes['changed'])} with other values (largest |Δ| {largest:.3g}); "
                         f"details: conform diff REPORT --between {_t(a)} {_t(b)}")
    return lines


def registry_note(r: dict) -> str:
    """`  known divergence F1` or `  resembles F2 (differs in: bias)`, the id linked to its evidence."""
    entry = r.get("divergence") or r.get("resembles")
    if not entry:
        return ""
    name = _t(entry.get("id", "?"))
    href = entry.get("href") or ""
    if href.startswith(("https://", "http://", "file://")):
        name = f"[link={escape(href)}]{name}[/link]"
    if r.get("divergence"):
        return f"  [cyan]known divergence {name}[/]"
    differs = ", ".join(map(str, entry.get("failed_conditions") or []))
    return f"  [yellow]resembles {name}[/]" + (f" [dim](differs in: {_t(differs)})[/]" if differs else "")
