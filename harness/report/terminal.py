"""The terminal summary: a verdict × backend table and the non-passing results.

Every string from a case file, a framework or the registry goes through
``_show`` (control characters and escape sequences made visible by
``safe_text``, then rich markup escaped): a result can neither recolour nor
rewrite the user's terminal.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.compare import GREEN
from harness.text import safe_text

VERDICT_ORDER = ["pass", "xfail", "unsupported", "skipped", "shape_mismatch", "value_mismatch",
                 "unexpected_error", "missing_error", "crash", "timeout", "xpass"]
STYLE = {"pass": "green", "xfail": "cyan", "unsupported": "yellow", "skipped": "dim"}


def _show(value) -> str:
    return escape(safe_text("" if value is None else value))


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
        table.add_row(_show(backend), _show(env.get("version") or "-"), *[str(counts.get(v, "")) for v in verdicts])
    console.print(table)
    failing = [r for r in report["results"] if r["verdict"] not in GREEN]
    for r in failing[:max_failures]:
        console.print(f"[bold red]{_show(r['verdict'])}[/] {_show(r['backend'])} {_show(r['case'])}  "
                      f"[dim]{_show(r['file'])}:{_show(r['line'])}[/]  {_show(r.get('reason'))}",
                      highlight=False, soft_wrap=True)
    if len(failing) > max_failures:
        console.print(f"... and {len(failing) - max_failures} more in report.json")
    for entry in report.get("stale_divergences", []):
        console.print(f"[yellow]stale known divergence[/] {_show(entry['id'])} "
                      f"[dim]{_show(entry['file'])}:{_show(entry['line'])}[/]: {_show(entry['reason'])}",
                      highlight=False)
    gate = report["gate"]
    console.print(("[green]gate: pass[/]" if gate["passed"] else "[bold red]gate: FAIL[/]")
                  + (" (incomplete run)" if report.get("incomplete") else ""))
