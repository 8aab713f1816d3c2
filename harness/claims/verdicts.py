"""Claim records for report.json: one per point, one per claim, and the claim's gate.

A point's ``verdict`` is the side-against-side verdict (``harness.claims.judge``);
its ``sides`` say, per surface, the claim's native parameters, their
canonical meaning (fields and words), the side's own verdict against that
meaning and the registry entry that explains a departure from it. A claim
``holds`` when no point fails, ``breaks`` at its first failing point, and is
``unchecked`` when no point could be run (skipped or unsupported everywhere).

The gate: a claim passes when it holds, or when it says ``expect: breaks``
and breaks (its failing points become ``xfail``) for the reasons it names
(``explained_by``: registry entry ids, or their leading part such as ``F1``,
each explaining some side at the first breaking point). A claim expected to
break that holds fails (its points ``xpass``), as does one that breaks for
another reason. A claim that could not be checked (``unchecked``: its sides not selected or not available)
is skipped whatever it expects: it neither fails the gate nor counts as holding or as an expected break.
"""

from __future__ import annotations

from typing import Optional

from harness import envs
from harness.claims import words
from harness.claims.load import ClaimSpec, Point
from harness.compare import Judgement
from harness.divergences import Registry

#: Point verdicts that say nothing about the claim (it could not be checked there).
UNCHECKED = {"skipped", "unsupported"}


def point_record(spec: ClaimSpec, point: Point, judgement: Judgement, runs: Optional[list],
                 meanings: list[str]) -> dict:
    sides = []
    for index, side in enumerate(point.sides):
        run = runs[index] if runs else None
        outcome = run.outcome if run else None
        params = side.case.canonical_params()
        entry = {"backend": side.backend, "native": side.native, "layout": side.layout,
                 "canonical": {k: v for k, v in params.items() if k != "input"},
                 "input": params["input"],
                 "resolved": side.case.resolved.as_dict() if side.case.resolved is not None else None,
                 "meaning": meanings[index] if meanings else words.meaning(None, side.case.invalid_reason),
                 "expected_shape": list(side.case.expected_shape) if side.case.expected_shape else None,
                 "backend_version": envs.version_of(side.backend)}
        if run is not None:
            entry.update({"verdict": run.judgement.verdict, "reason": run.judgement.reason,
                          "actual_shape": list(outcome.output.shape) if outcome and outcome.output is not None
                          else None,
                          "native_call": outcome.native_call if outcome else None,
                          "emulated": bool(outcome and outcome.emulated), "notes": outcome.notes if outcome else [],
                          "error": {"type": outcome.error_type, "message": outcome.error_message}
                          if outcome and outcome.status == "error" else None,
                          "duration_ms": round(outcome.duration_ms, 3) if outcome and outcome.duration_ms else None})
        sides.append(entry)
    metrics = judgement.metrics or {}
    resolved = {s["backend"]: s["resolved"] for s in sides}
    return {"claim": spec.id, "id": point.id, "point": point.variables, "file": spec.file, "line": point.line,
            "op": spec.claim.op, "dtype": spec.claim.dtype, "input": point.input,
            "verdict": judgement.verdict, "reason": judgement.reason,
            "max_abs_diff": metrics.get("max_abs_diff"), "ratio": metrics.get("ratio"),
            "worst_index": metrics.get("worst_index"), "contrast": words.contrast(resolved), "sides": sides}


def explain_sides(record: dict, runs: list, registry: Registry) -> None:
    """Name the registry entry that explains each side's departure from its own canonical meaning."""
    for entry, run in zip(record["sides"], runs):
        if run.outcome is None or entry.get("verdict") in ("pass", None):
            continue
        case = run.side.case
        probe = {"case": case.id, "op": case.op, "params": case.canonical_params(), "dtype": case.dtype,
                 "data": case.common.data.model_dump(), "backend": run.side.backend, "verdict": entry["verdict"]}
        selector = registry.match(probe, entry["backend_version"])
        if selector is not None and entry["verdict"] in selector.entry.verdicts():
            entry["divergence"] = selector.note()


def _explanation(point: dict) -> str:
    """Why a point breaks, in words: what each side means, and which side departs from its meaning, why."""
    parts = []
    rejected = [s for s in point["sides"] if s["resolved"] is None]
    if point.get("contrast"):
        parts.append(f"the calls mean different things: {point['contrast']}")
    elif rejected:
        parts.append("the calls mean different things: " + "; ".join(f"{s['backend']}: {s['meaning']}"
                                                                     for s in point["sides"]))
    else:
        parts.append("the calls mean the same (" + "; ".join(f"{s['backend']}: {s['meaning']}"
                                                            for s in point["sides"]) + ")")
    for side in point["sides"]:
        if side.get("verdict") not in (None, "pass"):
            known = side.get("divergence")
            why = f"known divergence {known['id']}: {known['reason']}" if known else side.get("reason") or ""
            parts.append(f"{side['backend']} departs from its own canonical meaning ({side['verdict']}): {why}")
    if all(side.get("verdict") == "pass" for side in point["sides"]):
        parts.append("each side does what its own call means")
    return "; ".join(parts)


def _explains(wanted: str, point: dict) -> bool:
    ids = [s["divergence"]["id"] for s in point["sides"] if s.get("divergence")]
    return any(i == wanted or i.split("-")[0] == wanted for i in ids)


def claim_record(spec: ClaimSpec, points: list[dict], duration_s: float) -> dict:
    claim = spec.claim
    checked = [p for p in points if p["verdict"] not in UNCHECKED]
    broken = [p for p in checked if p["verdict"] != "pass"]
    status = "breaks" if broken else "holds" if checked else "unchecked"
    first = broken[0] if broken else None
    record = {"id": claim.id, "file": spec.file, "line": spec.line, "op": claim.op, "source": claim.source,
              "description": claim.description, "sides": spec.backends, "expect": claim.expect,
              "expect_reason": claim.reason, "explained_by": claim.explained_by, "status": status,
              "points_total": len(points), "points_checked": len(checked), "points_broken": len(broken),
              "first_break": first["id"] if first else None, "duration_s": duration_s, "points": points}
    if first is not None:
        record["breaking"] = {"verdict": first["verdict"], "reason": first["reason"],
                              "max_abs_diff": first["max_abs_diff"], "contrast": first["contrast"],
                              "explanation": _explanation(first),
                              "divergences": sorted({s["divergence"]["id"] for s in first["sides"]
                                                     if s.get("divergence")})}
    record["gate"], record["gate_reason"] = _gate(record, first)
    if claim.expect == "breaks":
        for point in points:
            if point["verdict"] not in UNCHECKED and point["verdict"] != "pass":
                point["original_verdict"], point["verdict"] = point["verdict"], "xfail"
            elif status == "holds" and point["verdict"] == "pass":
                point["verdict"] = "xpass"
    return record


def _gate(record: dict, first: Optional[dict]) -> tuple[bool, str]:
    if record["status"] == "unchecked":     # skipped, as a case whose backend is not there: no verdict either way
        why = next((p["reason"] for p in record["points"] if p.get("reason")), None)
        return True, "not checked" + (f": {why}" if why else "")
    if record["expect"] == "holds":
        if record["status"] == "breaks":
            return False, f"breaks at {first['id']}: {first['verdict']}"
        return True, ""
    if record["status"] != "breaks":
        return False, f"expected to break ({record['expect_reason']}), but it holds"
    if first["verdict"] in ("crash", "timeout"):
        return False, f"expected to break, but a side {first['verdict']}ed at {first['id']}"
    unexplained = [w for w in record["explained_by"] if not _explains(w, first)]
    if unexplained:
        return False, (f"breaks at {first['id']}, but not because of {', '.join(unexplained)} "
                       f"({_explanation(first)})")
    return True, "breaks as expected"
