"""Parameter and value-pair coverage of a suite, per operator (``conform coverage``).

Each case is classified into *levels* per parameter by its operator
(``OpSpec.coverage``: the values the suite must cover, e.g. stride ∈ {1, 2,
3}, and the function that says which levels a case sits in; a case may sit
in several levels at once, and values outside the required levels are listed
as extras).

The pairwise generator (``harness.pairwise``) uses this same classification
to decide which pairs a row covers, so "generated pairwise" and "reported as
covered" cannot disagree. Error cases (``expect: {error: true}``) are
counted separately: they exercise rejection, not a parameter combination.

With ``--report`` the coverage says which backends *ran* each value and pair:
a backend ran a case when its verdict is anything but ``skipped`` or
``unsupported`` (a pass, an xfail or a mismatch all mean the call was made).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from harness import ops
from harness.pairwise import for_op, pairs_of, required_pairs
from harness.report.gradients import gradient_of

#: Verdicts that mean the backend did not make the call.
NOT_RUN = {"skipped", "unsupported"}


# --------------------------------------------------------------------------- measuring a suite


@dataclass
class Coverage:
    op: str
    cases: int = 0
    error_cases: int = 0
    backends: list[str] = field(default_factory=list)
    #: (param, value) -> case ids
    values: dict[tuple, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: pair -> case ids
    pairs: dict[tuple, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: case id -> backend -> verdict (from a report)
    verdicts: dict[str, dict[str, str]] = field(default_factory=dict)
    #: case id -> backend -> reason, for results that were not run (unsupported/skipped)
    reasons: dict[str, dict[str, str]] = field(default_factory=dict)
    #: error case id -> backend -> verdict
    errors: dict[str, dict[str, str]] = field(default_factory=dict)

    def ran(self, ids: list[str]) -> dict[str, int]:
        """Backend -> how many of ``ids`` it ran."""
        counts = Counter()
        for cid in ids:
            for backend, verdict in self.verdicts.get(cid, {}).items():
                if verdict not in NOT_RUN:
                    counts[backend] += 1
        return {b: counts.get(b, 0) for b in self.backends}

    def verdict_counts(self, ids: list[str]) -> dict[str, Counter]:
        out: dict[str, Counter] = {b: Counter() for b in self.backends}
        for cid in ids:
            for backend, verdict in self.verdicts.get(cid, {}).items():
                out.setdefault(backend, Counter())[verdict] += 1
        return out

    def not_run_reason(self, ids: list[str], backend: str) -> str:
        # TensorFlow prefixes its messages with the op's function node: keep the message itself.
        reasons = Counter(re.sub(r"\{\{function_node [^}]*\}\}\s*", "", self.reasons.get(cid, {}).get(backend, ""))
                          for cid in ids)
        reasons.pop("", None)
        return reasons.most_common(1)[0][0] if reasons else ""

    @property
    def required(self) -> dict[str, list[str]]:
        return ops.get(self.op).coverage.required


def measure_all(cases, report: Optional[dict] = None) -> list[Coverage]:
    """One ``Coverage`` per operator the cases use, in registration order."""
    present = {case.op for case in cases}
    return [measure([c for c in cases if c.op == name], report, name) for name in ops.OPS if name in present]


def measure(cases, report: Optional[dict] = None, op: Optional[str] = None) -> Coverage:
    """Classify every case of ``op`` (default: the operator of the cases; there must be one); with a
    report, remember which backend ran which case."""
    names = {case.op for case in cases}
    if op is None:
        if len(names) > 1:
            raise ValueError(f"cases of several operators ({', '.join(sorted(names))}): use measure_all")
        op = next(iter(names), next(iter(ops.OPS)))
    spec = ops.get(op)
    cases = [c for c in cases if c.op == op]
    cov = Coverage(op)
    if report:
        cov.backends = list(report.get("environment", {}).get("backends", {}))
        # The forward result says whether a backend ran a case; a gradient result (backward mode) only when
        # the case has no forward result, so an unsupported gradient never hides a forward call that ran.
        for r in sorted(report["results"], key=lambda r: gradient_of(r) is not None):
            if gradient_of(r) is not None and r["backend"] in cov.verdicts.get(r["case"], {}):
                continue
            cov.verdicts.setdefault(r["case"], {})[r["backend"]] = r["verdict"]
            if r["verdict"] in NOT_RUN:
                cov.reasons.setdefault(r["case"], {})[r["backend"]] = r.get("reason") or ""
        if not cov.backends:
            cov.backends = sorted({r["backend"] for r in report["results"]})
    parameters = list(spec.coverage.required)
    for case in cases:
        if case.expects_error:
            cov.error_cases += 1
            cov.errors[case.id] = cov.verdicts.get(case.id, {})
            continue
        cov.cases += 1
        levels = spec.coverage.classify(case.canonical_params(), case.dtype, case.common.data.model_dump())
        for param in parameters:
            for value in levels[param]:
                cov.values[(param, value)].append(case.id)
        for pair in pairs_of(levels, parameters):
            cov.pairs[pair].append(case.id)
    return cov


def load_report(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- text output


def _pair_name(pair) -> str:
    (a, va), (b, vb) = pair
    return f"{a}={va} × {b}={vb}"


def _ran_text(cov: Coverage, ids: list[str]) -> str:
    if not cov.backends:
        return ""
    ran = cov.ran(ids)
    missing = [b for b in cov.backends if ran[b] == 0]
    if not missing:
        return "ran: all " + str(len(cov.backends))
    return "ran: " + (" ".join(b for b in cov.backends if ran[b]) or "none") + "; not: " + " ".join(missing)


def render(cov: Coverage, *, summary: bool = False) -> str:
    """The ``conform coverage`` text of one operator."""
    explain_uncovered = for_op(cov.op).explain_uncovered
    required = cov.required
    lines: list[str] = []
    head = f"conform coverage: {cov.op}: {cov.cases} cases (+ {cov.error_cases} error cases, counted apart)"
    if cov.backends:
        head += f"; backends from the report: {', '.join(cov.backends)}"
    lines += [head, ""]

    # ---- values
    lines.append("Values (cases; with a report: how many of them each backend ran)")
    width = max(len(b) for b in cov.backends) if cov.backends else 0
    header = f"  {'parameter':15} {'value':11} {'cases':>6}"
    if cov.backends:
        header += "".join(f" {b:>{max(width, 6)}}" for b in cov.backends)
    lines.append(header)
    for param in required:
        seen = [v for v in required[param]] + sorted(v for (p, v) in cov.values if p == param
                                                     and v not in required[param])
        for value in seen:
            ids = cov.values.get((param, value), [])
            extra = "" if value in required[param] else "  (extra)"
            row = f"  {param:15} {value:11} {len(ids):>6}"
            if cov.backends:
                ran = cov.ran(ids)
                row += "".join(f" {ran[b]:>{max(width, 6)}}" for b in cov.backends)
            lines.append(row + extra + ("   NOT COVERED" if not ids else ""))
    lines.append("")

    # ---- pairs
    wanted = required_pairs(required)
    covered = [p for p in wanted if cov.pairs.get(p)]
    uncovered = [p for p in wanted if not cov.pairs.get(p)]
    lines.append(f"Value pairs: {len(covered)} of {len(wanted)} required pairs covered "
                 f"({len(wanted) - len(covered)} not)")
    by_params: dict[tuple, list] = defaultdict(list)
    for pair in wanted:
        by_params[(pair[0][0], pair[1][0])].append(pair)
    for (a, b), pairs in by_params.items():
        got = sum(1 for p in pairs if cov.pairs.get(p))
        full_ran = ""
        if cov.backends:
            counts = Counter()
            for p in pairs:
                ran = cov.ran(cov.pairs.get(p, []))
                for backend in cov.backends:
                    counts[backend] += ran[backend] > 0
            full_ran = "   backends ran " + ", ".join(f"{bk} {counts[bk]}/{len(pairs)}" for bk in cov.backends)
        lines.append(f"  {a} × {b}: {got}/{len(pairs)}{full_ran}")
        if summary:
            continue
        for pair in pairs:
            ids = cov.pairs.get(pair, [])
            if not ids:
                lines.append(f"    {_pair_name(pair):48} NOT COVERED")
                continue
            lines.append(f"    {_pair_name(pair):48} {len(ids):4} cases  {_ran_text(cov, ids)}")
    lines.append("")

    # ---- not covered, with the reason
    lines.append("Pairs not covered" + (":" if uncovered else ": none"))
    for pair in uncovered:
        lines.append(f"  {_pair_name(pair)}: {explain_uncovered(pair)}")
    lines.append("")

    # ---- pairs some backend never ran
    if cov.backends:
        lines.append("Covered pairs a backend never ran (unsupported or skipped everywhere it was posed)")
        for backend in cov.backends:
            never = [p for p in covered if cov.ran(cov.pairs[p])[backend] == 0]
            if not never:
                lines.append(f"  {backend}: ran every covered pair")
                continue
            lines.append(f"  {backend}: {len(never)} pairs never run")
            reasons: dict[str, list] = defaultdict(list)
            for p in never:
                reasons[cov.not_run_reason(cov.pairs[p], backend)[:110] or "no result in the report"].append(p)
            for reason, pairs in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
                shown = ", ".join(_pair_name(p) for p in pairs[:4]) + (" …" if len(pairs) > 4 else "")
                lines.append(f"    {len(pairs):3} × {reason}")
                lines.append(f"          e.g. {shown}")
        lines.append("")

    # ---- error cases
    lines.append(f"Error cases: {cov.error_cases}")
    if cov.backends and cov.errors:
        for backend in cov.backends:
            counts = Counter(v.get(backend, "no result") for v in cov.errors.values())
            lines.append(f"  {backend:18} " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))
    return "\n".join(lines)


def as_json(cov: Coverage) -> dict[str, Any]:
    wanted = required_pairs(cov.required)
    return {
        "op": cov.op, "cases": cov.cases, "error_cases": cov.error_cases, "backends": cov.backends,
        "values": {f"{p}={v}": {"cases": len(ids), "ran": cov.ran(ids)} for (p, v), ids in cov.values.items()},
        "pairs": {_pair_name(p): {"cases": len(cov.pairs.get(p, [])), "ran": cov.ran(cov.pairs.get(p, []))}
                  for p in wanted},
        "uncovered": [_pair_name(p) for p in wanted if not cov.pairs.get(p)],
    }
