"""``conform mapping``: a parameter-mapping table between two API surfaces, from the adapters.

The table has the shape of MindSpore's API-mapping pages (one row per
parameter; each surface's native name, type and convention; the
differences), but every cell comes from a declaration next to the code that
uses it: ``PARAMETERS`` on each backend class (``harness/backends/*.py``),
one ``NativeParam`` per canonical parameter. ``tests/test_mapping.py`` runs
the real adapters and checks each declaration against the calls they make
(native name present in the call, positional index matching the framework's
real signature, emulated results marked ``emulated``), so the table cannot
drift from the code.

The last column is measured: from a ``report.json``, over the cases that use
the parameter (a non-default value), how many cases the two surfaces agree
on (both pass, or both reject an invalid call), how many they diverge on
(with the known-divergence ids, e.g. F1, that explain them), and how many one
side could not express.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness import ops
from harness.backends import backend_class
from harness.backends.base import NativeParam
from harness.ops.spec import Canonical
from harness.report.gradients import gradient_of

NOT_RUN = {"skipped", "unsupported"}


def canonical(op: str) -> tuple[Canonical, ...]:
    """The operator's mapping rows (``OpSpec.mapping``), in table order."""
    return ops.get(op).mapping


def declarations(backend_id: str, op: str) -> dict[str, NativeParam]:
    """A backend's ``PARAMETERS`` for ``op`` (empty if it declares none)."""
    cls = backend_class(backend_id)
    return dict(getattr(cls, "PARAMETERS", {}).get(op, {}))


# --------------------------------------------------------------------------- measured status


@dataclass
class Status:
    cases: int = 0
    agree: int = 0
    both_off: int = 0          # both surfaces fail the same way (agree with each other, not with the semantics)
    diverge: int = 0
    not_run: Counter = None    # side -> cases it could not run
    emulated: Counter = None   # side -> cases where its call emulated something
    findings: Counter = None   # known-divergence ids explaining divergences
    missing: int = 0           # cases without a result for one side
    parts: dict = None         # value label -> Status, for a parameter with a breakdown

    def __post_init__(self):
        self.not_run, self.emulated, self.findings, self.parts = Counter(), Counter(), Counter(), {}

    def short(self) -> str:
        text = f"agrees on {self.agree} of {self.cases}"
        if self.diverge:
            see = f" ({', '.join(sorted(self.findings))})" if self.findings else ""
            text += f", diverges on {self.diverge}{see}"
        return text

    def text(self, a: str, b: str) -> str:
        if self.cases == 0:
            return "not exercised by the suite"
        parts = [f"agrees on {self.agree} of {self.cases} cases"]
        if self.diverge:
            see = ", ".join(sorted(self.findings)) if self.findings else "not registered"
            parts.append(f"diverges on {self.diverge} — see {see}")
        if self.both_off:
            parts.append(f"both off the canonical result on {self.both_off}")
        for side in (a, b):
            if self.not_run[side]:
                parts.append(f"{side} cannot run {self.not_run[side]}")
        for side in (a, b):
            if self.emulated[side]:
                parts.append(f"{side} emulates in {self.emulated[side]}")
        if self.missing:
            parts.append(f"{self.missing} without a result for both")
        text = "; ".join(parts)
        if self.parts:
            text += " (" + "; ".join(f"{label}: {st.short()}" for label, st in sorted(self.parts.items())) + ")"
        return text


def _effective(record: dict) -> str:
    return record.get("original_verdict") or record["verdict"]


def _finding(record: dict) -> Optional[str]:
    div = record.get("divergence")
    return div["id"].split("-")[0] if div and div.get("id") else None


def measure(report: dict, op: str, a: str, b: str) -> dict[str, Status]:
    """Per canonical parameter, how surfaces ``a`` and ``b`` compare on the cases that use it."""
    by_case: dict[str, dict[str, dict]] = {}
    for r in report["results"]:   # forward results: a parameter mapping is about the forward call
        if r.get("op", op) == op and r["backend"] in (a, b) and gradient_of(r) is None:
            by_case.setdefault(r["case"], {})[r["backend"]] = r
    out = {}
    for canon in canonical(op):
        st = Status()
        for records in by_case.values():
            first = next(iter(records.values()))
            if not canon.uses(first["params"], first.get("dtype", "float32")):
                continue
            targets = [st]
            if canon.breakdown:
                targets.append(st.parts.setdefault(str(canon.breakdown(first["params"])), Status()))
            for target in targets:
                _count(target, records, a, b)
        out[canon.key] = st
    return out


def _count(st: "Status", records: dict, a: str, b: str) -> None:
    """Add one case (its records per backend) to ``st``."""
    st.cases += 1
    if a not in records or b not in records:
        st.missing += 1
        return
    ra, rb = records[a], records[b]
    skipped = [side for side, rec in ((a, ra), (b, rb)) if rec["verdict"] in NOT_RUN]
    for side in skipped:
        st.not_run[side] += 1
    if skipped:
        return
    for side, rec in ((a, ra), (b, rb)):
        st.emulated[side] += bool(rec.get("emulated"))
    va, vb = _effective(ra), _effective(rb)
    if va == "pass" and vb == "pass":
        st.agree += 1
        return
    if va == vb and (ra["expected_shape"] is None or b in (ra.get("agrees_with") or [])):
        st.both_off += 1
    else:
        st.diverge += 1
    for rec in (ra, rb):
        if _finding(rec):
            st.findings[_finding(rec)] += 1


# --------------------------------------------------------------------------- the table


def _cell(decl: Optional[NativeParam]) -> str:
    if decl is None:
        return "— (not declared)"
    if decl.name is None:
        how = "emulated: " if decl.emulated else ""
        return f"— ({how}{decl.convention})" if decl.convention else "—"
    text = f"`{decl.name}`"
    if decl.type:
        text += f": {decl.type}"
    if decl.convention:
        text += f"; {decl.convention}"
    return text


def _differences(a: str, b: str, da: Optional[NativeParam], db: Optional[NativeParam]) -> str:
    na, nb = (da.name if da else None), (db.name if db else None)
    if na and nb:
        same = "Same name" if na == nb else "Same function, different parameter names"
        if (da.type, da.convention) != (db.type, db.convention):
            same += "; types or conventions differ (see the cells)"
        return same
    if na and not nb:
        return f"{b} has no such parameter" + (" (emulated by the adapter)" if db and db.emulated else "")
    if nb and not na:
        return f"{a} has no such parameter" + (" (emulated by the adapter)" if da and da.emulated else "")
    return "Neither has a parameter of its own"


def rows(op: str, a: str, b: str, report: Optional[dict] = None) -> list[dict]:
    """One dict per canonical parameter: canonical, a, b, differences, measured."""
    decl_a, decl_b = declarations(a, op), declarations(b, op)
    status = measure(report, op, a, b) if report else {}
    out = []
    for canon in canonical(op):
        da, db = decl_a.get(canon.key), decl_b.get(canon.key)
        if canon.key == "name" and da is None and db is None:
            continue
        measured = status[canon.key].text(a, b) if canon.key in status else "not measured (no report)"
        if canon.key == "name":
            measured = "not involved: no effect on values"
        out.append({"key": canon.key, "canonical": canon.label, a: _cell(da), b: _cell(db),
                    "differences": _differences(a, b, da, db), "measured": measured})
    return out


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render(op: str, a: str, b: str, report: Optional[dict] = None, report_path: str = "") -> str:
    table = rows(op, a, b, report)
    lines = [f"# {op}: {a} → {b}", ""]
    lines.append(f"Generated by `conform mapping {op} --from {a} --to {b}"
                 + (f" --report {report_path}" if report_path else "") + "` from the adapters' own "
                 "declarations (`PARAMETERS` in `harness/backends/*.py`, checked against their real calls by "
                 "`tests/test_mapping.py`).")
    if report:
        envs = report.get("environment", {}).get("backends", {})
        versions = ", ".join(f"{bid} {envs[bid].get('version')}" for bid in (a, b) if bid in envs)
        n_cases = len({r["case"] for r in report["results"] if r.get("op", op) == op})
        lines.append(f"The last column is measured on the {n_cases} cases of a run created "
                     f"{report.get('created', '?')} ({versions}): over the cases that use the parameter, "
                     "\"agrees\" = both pass (or both reject an invalid call).")
    lines += ["", f"| Categories | Subcategories | canonical | {a} | {b} | Differences | Measured on this suite |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, row in enumerate(table, 1):
        category = "Parameters" if i == 1 else ""
        lines.append("| " + " | ".join(_escape(c) for c in (category, f"Parameter {i}", row["canonical"], row[a],
                                                                row[b], row["differences"], row["measured"]))
                     + " |")
    if report:
        seen = {}
        for r in report["results"]:
            div = r.get("divergence")
            if div and r["backend"] in (a, b) and r.get("op", op) == op:
                seen.setdefault(div["id"], div)
        if seen:
            lines += ["", f"Known divergences of {op} seen on these surfaces:", ""]
            for did, div in sorted(seen.items()):
                lines.append(f"- **{did}** ({div.get('link') or ''}): {' '.join(div.get('reason', '').split())}")
    return "\n".join(lines) + "\n"


def load_report(path: Path) -> Optional[dict]:
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
