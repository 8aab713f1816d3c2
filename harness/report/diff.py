"""``conform diff OLD.json NEW.json``: what changed between two runs (a regression gate across versions).

Results are matched by (case, backend, gradient) (a missing ``gradient`` is
the forward result, so reports written before backward mode still match) and compared by verdict severity
(``SEVERITY``, least to most severe)::

    pass < xpass < unsupported < xfail < value_mismatch < shape_mismatch
         < missing_error < unexpected_error < timeout < crash

* ``worse``: the verdict became more severe (a new capability gap, a known
  divergence turned into a failure, a value mismatch turned into a crash, ...);
* ``better``: less severe;
* ``new`` / ``gone``: the pair exists in only one of the runs;
* ``unrun``: ran before, ``skipped`` now (backend unavailable or filtered): no
  evidence either way, listed but never a regression; skipped before and run
  now counts as ``new``;
* ``intermittent``: moved between ``pass`` and ``xfail`` under one known
  divergence the registry marks ``intermittent`` (the pass names it as not
  observed this time): the divergence showed in one run and not in the other,
  as it does at random. Listed, never a regression: F10's corrupted oneDNN
  workspace gives the right filter gradient in some processes and a wrong one
  in others, and a nightly gate that compared two runs failed on it.

The exit code is 1 when anything became worse, else 0.

``conform diff REPORT --between A B`` compares two backends of one run the
same way (A as the baseline), typically one surface at two releases
(``onnxruntime@1.31.1`` and ``onnxruntime@1.32.0``); it adds ``changed``: the
cases whose outputs differ between the two although neither verdict moved,
with the largest difference (the run's ``version_delta``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from harness.report import claims as claim_reports
from harness.report.gradients import result_key, suffix
from harness.report.json_report import SCHEMA
from harness.report.schema import check
from harness.userfile import MIB, read_text
from harness.yamlsrc import ProblemsError

#: Verdicts from least to most severe (DESIGN.md §5); ``skipped`` carries no evidence and is outside the order.
SEVERITY_ORDER = ["pass", "xpass", "unsupported", "xfail", "value_mismatch", "shape_mismatch",
                  "missing_error", "unexpected_error", "timeout", "crash"]
SEVERITY = {v: i for i, v in enumerate(SEVERITY_ORDER)}
SEVERITY["skipped"] = -1
CATEGORIES = ("worse", "better", "new", "gone", "unrun", "intermittent", "changed")


def severity(verdict: str) -> int:
    """Rank of a verdict; an unknown verdict (a newer schema) ranks as the most severe."""
    return SEVERITY.get(verdict, len(SEVERITY_ORDER))


class ReportError(Exception):
    """A file that is not a readable conform report (a usage error, exit 2)."""


#: report.json is compact JSON of ~1 KB per result; this allows several hundred thousand results.
MAX_REPORT_BYTES = 512 * MIB


def load(path: Path) -> dict:
    """A report.json with the shape every reader relies on; ``ReportError`` (exit 2) otherwise."""
    try:
        text = read_text(Path(path), str(path), MAX_REPORT_BYTES)   # regular file, bounded, UTF-8
        report = json.loads(text)
    except ProblemsError as exc:
        raise ReportError(f"cannot read a report: {exc}") from None
    except (ValueError, RecursionError) as exc:   # RecursionError: JSON nested thousands of levels deep
        raise ReportError(f"{path}: cannot read a report: {str(exc) or 'nested too deeply'}") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA or not isinstance(report.get("results"), list):
        raise ReportError(f"{path}: not a {SCHEMA} report")
    wrong = check(report)
    if wrong:
        raise ReportError(f"{path}: not a readable {SCHEMA} report: {wrong}")
    return report


def _raw_ratio(record: Optional[dict]):
    """bound_ratio as stored (a number, or "inf"/"nan" as report.json writes them), None without metrics."""
    return None if record is None else (record.get("metrics") or {}).get("bound_ratio")


def _intermittent(a: dict, b: dict) -> bool:
    """Whether ``a`` -> ``b`` is a pass <-> xfail move under one intermittent known divergence."""
    if {a["verdict"], b["verdict"]} != {"pass", "xfail"}:
        return False
    passed, failed = (a, b) if a["verdict"] == "pass" else (b, a)
    seen, named = passed.get("divergence") or {}, failed.get("divergence") or {}
    return bool(seen.get("intermittent")) and seen.get("id") is not None and seen.get("id") == named.get("id")


def diff(old: dict, new: dict) -> dict:
    """Entries ``{case, backend, gradient, old, new, old_ratio, new_ratio}`` per category."""
    before = {result_key(r): r for r in old["results"]}
    after = {result_key(r): r for r in new["results"]}
    out: dict[str, list] = {"worse": [], "better": [], "new": [], "gone": [], "unrun": [], "intermittent": []}
    for key in list(before) + [k for k in after if k not in before]:
        a, b = before.get(key), after.get(key)
        entry = {"case": key[0], "backend": key[1], "gradient": key[2], "old": a and a["verdict"], "new": b and b["verdict"],
                 "old_ratio": _raw_ratio(a), "new_ratio": _raw_ratio(b),
                 "reason": (b or a).get("reason") or ""}
        if b is None:
            out["gone"].append(entry)
        elif a is None or (a["verdict"] == "skipped" and b["verdict"] != "skipped"):
            out["new"].append(entry)
        elif b["verdict"] == "skipped":
            if a["verdict"] != "skipped":
                out["unrun"].append(entry)
        elif _intermittent(a, b):
            out["intermittent"].append({**entry, "divergence": (a.get("divergence") or b.get("divergence"))["id"]})
        elif severity(b["verdict"]) > severity(a["verdict"]):
            out["worse"].append(entry)
        elif severity(b["verdict"]) < severity(a["verdict"]):
            out["better"].append(entry)
    for category, entries in claim_reports.diff(old, new).items():
        out[category] += entries
    out["worse"].sort(key=lambda e: (-severity(e["new"]), e["backend"], e["case"], e.get("gradient") or ""))
    return out


def between(report: dict, a: str, b: str) -> dict:
    """``diff`` of backend ``a``'s results (baseline) against backend ``b``'s, within one report."""
    known = {r["backend"] for r in report["results"]}
    missing = [x for x in (a, b) if x not in known]
    if missing:
        raise ReportError(f"no results for {', '.join(missing)} in this report; it has {', '.join(sorted(known))}")
    side = {x: {"results": [{**r, "backend": f"{a} -> {b}"} for r in report["results"] if r["backend"] == x]}
            for x in (a, b)}
    changes = diff(side[a], side[b])
    moved = {(e["case"], e.get("gradient")) for category in changes.values() for e in category}
    changes["changed"] = [
        {"case": r["case"], "backend": f"{a} -> {b}", "gradient": result_key(r)[2], "old": r["verdict"],
         "new": r["verdict"], "old_ratio": None, "new_ratio": None, "max_abs_diff": r["version_delta"][a],
         "reason": ""}
        for r in report["results"]
        if r["backend"] == b and (r["case"], result_key(r)[2]) not in moved and (r.get("version_delta") or {}).get(a)]
    return changes


def _fmt_ratio(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def format_text(changes: dict, old_path, new_path) -> str:
    lines = [f"conform diff: {old_path} -> {new_path}"]
    categories = [c for c in CATEGORIES if c in changes]
    for category in categories:
        entries = changes[category]
        lines.append(f"{category} ({len(entries)}):")
        for e in entries:
            name = e["case"] + suffix(e.get("gradient"))   # `case · ∂x` for a gradient result
            if category == "changed":
                lines.append(f"  {e['backend']:18} {name}  {e['new']}, outputs differ by up to "
                             f"{_fmt_ratio(e['max_abs_diff'])}")
                continue
            verdicts = {"new": f"{e['new']}", "gone": f"{e['old']}"}.get(category, f"{e['old']} -> {e['new']}")
            ratio = ""
            if category == "intermittent":
                ratio = f"  ({e['divergence']}: intermittent)"
            elif e["old_ratio"] is not None or e["new_ratio"] is not None:
                ratio = f"  (bound_ratio {_fmt_ratio(e['old_ratio'])} -> {_fmt_ratio(e['new_ratio'])})"
            lines.append(f"  {e['backend']:18} {name}  {verdicts}{ratio}")
    counts = ", ".join(f"{len(changes[c])} {c}" for c in categories)
    lines.append(f"{counts}: {'FAIL (something became worse)' if changes['worse'] else 'ok'}")
    return "\n".join(lines) + "\n"
