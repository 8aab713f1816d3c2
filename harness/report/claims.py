"""Claims in every report: report.json's ``claims`` section, the terminal, summary.md, junit.xml, diff.

The records come from ``harness.claims`` (``verdicts.claim_record``); the
readers here only read them, and tolerate a report without claims (an older
one, or a run of cases only).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

FAILING_POINT = {"shape_mismatch", "value_mismatch", "missing_error", "unexpected_error", "crash", "timeout",
                 "xpass"}


def claims_of(report: dict) -> list[dict]:
    claims = report.get("claims")
    return claims if isinstance(claims, list) else []


def summary(claims: list[dict]) -> dict[str, Any]:
    """Counts for ``claims_summary``: by status, expected breaks, and the claims that fail the gate."""
    return {"claims": len(claims), "points": sum(c.get("points_total", 0) for c in claims),
            "by_status": dict(sorted(Counter(c.get("status") for c in claims).items())),
            "expected_breaks": sum(c.get("expect") == "breaks" and c.get("status") == "breaks" and bool(c.get("gate"))
                                   for c in claims),
            "failing": sorted(c["id"] for c in claims if not c.get("gate"))}


def gate_passes(claims: list[dict]) -> bool:
    return all(c.get("gate") for c in claims)


def _mark(claim: dict) -> str:
    """``ok``, ``FAIL``, or ``skip`` for a claim that could not be checked (neither a pass nor a failure)."""
    if claim.get("status") == "unchecked" and claim.get("gate"):
        return "skip"
    return "ok  " if claim.get("gate") else "FAIL"


def status_word(claim: dict) -> str:
    """``holds``, ``breaks at ID``, ``breaks at ID (expected)``, ``unchecked``."""
    status = claim.get("status")
    if status == "breaks":
        return f"breaks at {claim.get('first_break')}" + (" (expected)" if claim.get("expect") == "breaks" else "")
    return str(status)


def lines(report: dict) -> list[str]:
    """Plain-text lines for the terminal: one per claim, the explanation under a broken one."""
    out = []
    for claim in claims_of(report):
        mark = _mark(claim)
        out.append(f"claim {mark} {claim['id']}: {status_word(claim)}  ({claim.get('file')}:{claim.get('line')}; "
                   f"{claim.get('points_checked')}/{claim.get('points_total')} points checked, "
                   f"{claim.get('duration_s', 0):.1f} s)")
        breaking = claim.get("breaking")
        if breaking:
            out.append(f"    {breaking.get('verdict')}: {breaking.get('reason')}")
            out.append(f"    {breaking.get('explanation')}")
        if (not claim.get("gate") or mark == "skip") and claim.get("gate_reason"):
            out.append(f"    gate: {claim['gate_reason']}")
        if claim.get("repro"):
            out.append(f"    reproducer: {claim['repro']}")
    return out


def _md(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


_GATE_CELL = {"ok  ": "✅", "FAIL": "❌", "skip": "skipped"}


def markdown(report: dict) -> list[str]:
    """summary.md's ``Claims`` section (nothing without claims)."""
    claims = claims_of(report)
    if not claims:
        return []
    out = ["### Claims", "", "| claim | sides | status | points | gate | evidence |", "| --- | --- | --- | ---: | --- | --- |"]
    for c in claims:
        breaking = c.get("breaking") or {}
        evidence = breaking.get("explanation") or ""
        if breaking.get("max_abs_diff") is not None:
            evidence = f"max difference {breaking['max_abs_diff']:.3g}; " + evidence
        out.append(f"| `{_md(c['id'])}` | {_md(' vs '.join(c.get('sides') or []))} | {_md(status_word(c))} | "
                   f"{c.get('points_checked')}/{c.get('points_total')} | {_GATE_CELL[_mark(c)]} | "
                   f"{_md(evidence[:400] or c.get('gate_reason') or '')} |")
    return out + [""]


def junit(root: ET.Element, report: dict, text) -> dict[str, int]:
    """A ``claims`` testsuite, one testcase per claim point (classname ``claims.<id>``); its counts."""
    claims = claims_of(report)
    if not claims:
        return {}
    suite = ET.SubElement(root, "testsuite", name="claims")
    counts = Counter()
    for claim in claims:
        points = claim.get("points") or []
        for index, point in enumerate(points):
            case = ET.SubElement(suite, "testcase", name=text(point["id"]), classname=text(f"claims.{claim['id']}"),
                                 time=f"{sum((s.get('duration_ms') or 0) for s in point.get('sides', [])) / 1e3:.6f}")
            counts["tests"] += 1
            verdict = point.get("verdict")
            detail = text(f"{point.get('reason') or ''}\n{point.get('contrast') or ''}")
            # The claim's own gate failure (held though expected to break, or broke for another reason) is
            # carried by its first breaking point, or by its last point when none broke.
            carries = not claim.get("gate") and (point["id"] == claim.get("first_break")
                                                 or (not claim.get("first_break") and index == len(points) - 1))
            if verdict in ("crash", "timeout", "unexpected_error") and claim.get("expect") == "holds":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=text(f"{verdict}: {point.get('reason')}")[:1000],
                              type=verdict).text = detail
            elif carries or verdict in FAILING_POINT:
                counts["failures"] += 1
                message = claim.get("gate_reason") if carries else f"{verdict}: {point.get('reason')}"
                ET.SubElement(case, "failure", message=text(message)[:1000], type=text(verdict)).text = detail
            elif verdict in ("skipped", "unsupported"):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=text(f"{verdict}: {point.get('reason')}")[:1000],
                              type=verdict)
            elif verdict == "xfail":
                ET.SubElement(case, "system-out").text = text(
                    f"xfail: the claim is expected to break ({claim.get('expect_reason')}); "
                    f"{(claim.get('breaking') or {}).get('explanation', '')}")
    suite.set("tests", str(counts["tests"]))
    for key in ("failures", "errors", "skipped"):
        suite.set(key, str(counts[key]))
    suite.set("time", "0")
    return {key: counts[key] for key in ("tests", "failures", "errors", "skipped")}


def _rank(claim: dict) -> int:
    """Severity of a checked claim's state for ``conform diff``: passing the gate < failing it."""
    return 0 if claim.get("gate") else 1


def diff(old: dict, new: dict) -> dict[str, list]:
    """Claim entries per ``conform diff`` category (backend ``claim``): holds -> breaks is worse. An unchecked
    claim is a skipped case, whatever it expects (older reports failed one expected to break): checked now
    is ``new``, no longer checked ``unrun``."""
    before = {c["id"]: c for c in claims_of(old)}
    after = {c["id"]: c for c in claims_of(new)}
    out: dict[str, list] = {"worse": [], "better": [], "new": [], "gone": [], "unrun": []}
    for cid in list(before) + [k for k in after if k not in before]:
        a, b = before.get(cid), after.get(cid)
        entry = {"case": cid, "backend": "claim", "old": a and status_word(a), "new": b and status_word(b),
                 "old_ratio": None, "new_ratio": None, "reason": ((b or a).get("gate_reason") or "")}
        if b is None:
            out["gone"].append(entry)
        elif a is None or (a.get("status") == "unchecked" and b.get("status") != "unchecked"):
            out["new"].append(entry)
        elif b.get("status") == "unchecked":
            if a.get("status") != "unchecked":
                out["unrun"].append(entry)
        elif _rank(b) > _rank(a):
            out["worse"].append(entry)
        elif _rank(b) < _rank(a):
            out["better"].append(entry)
    return out
