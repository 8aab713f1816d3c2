"""Parameter and value-pair coverage of a suite (``conform coverage``).

Each case is classified into *levels* per parameter: the values the issue
asks the suite to cover (stride ∈ {1, 2, 3}, kernel ∈ {1, …, 5, non-square},
dilation ∈ {1, 2}, groups ∈ {1, 2, C_in}, padding ∈ {same, valid, symmetric,
asymmetric}, output_padding ∈ {0, 1, s−1}, bias, layout, dtype) plus the input
data fill. A case may sit in several levels at once (``groups == C_in == 2``
is both ``2`` and ``C_in``; ``output_padding == 1`` with stride 2 is both ``1``
and ``s-1``); values outside the required levels are listed as extras.

The pairwise generator (``harness.pairwise``) uses this same classification
to decide which pairs a row covers, so "generated pairwise" and "reported as
covered" cannot disagree. Error cases (``expect: {error: true}``) are
counted separately: they exercise rejection, not a parameter combination.

With ``--report`` the coverage says which backends *ran* each value and pair:
a backend ran a case when its verdict is anything but ``skipped`` or
``unsupported`` (a pass, an xfail or a mismatch all mean the call was made).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

#: Parameter -> required levels, in display order.
REQUIRED: dict[str, list[str]] = {
    "stride": ["1", "2", "3"],
    "kernel_size": ["1", "2", "3", "4", "5", "non-square"],
    "dilation": ["1", "2"],
    "groups": ["1", "2", "C_in"],
    "padding": ["same", "valid", "symmetric", "asymmetric"],
    "output_padding": ["0", "1", "s-1"],
    "bias": ["false", "true"],
    "layout": ["NCHW", "NHWC"],
    "dtype": ["float16", "bfloat16", "float32", "float64"],
    "data": ["normal", "uniform", "ones", "arange", "impulse"],
}
PARAMETERS = list(REQUIRED)

#: Verdicts that mean the backend did not make the call.
NOT_RUN = {"skipped", "unsupported"}


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return tuple(value)  # type: ignore[return-value]


def _square(value) -> str:
    a, b = _pair(value)
    return str(a) if a == b else f"{a}x{b}"


def classify(params: dict, dtype: str, data: Optional[dict] = None) -> dict[str, set[str]]:
    """The levels a case covers, per parameter. ``params`` are canonical (Params.model_dump())."""
    kh, kw = _pair(params["kernel_size"])
    layout = params.get("layout", "NCHW")
    shape = params["input"]
    c_in = shape[3] if layout == "NHWC" else shape[1]
    groups = params.get("groups", 1)
    stride = _pair(params.get("stride", 1))
    op = _pair(params.get("output_padding", 0))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    levels: dict[str, set[str]] = {
        "stride": {_square(stride)},
        "kernel_size": {str(kh) if kh == kw else "non-square"},
        "dilation": {_square(params.get("dilation", 1))},
        "groups": {str(groups)} | ({"C_in"} if groups == c_in else set()),
        "bias": {"true" if params.get("bias") else "false"},
        "layout": {layout},
        "dtype": {dtype},
        "data": {(data or {}).get("x", "normal")},
    }
    if isinstance(padding, str):
        levels["padding"] = {padding}
    else:
        t, b, l, r = padding
        levels["padding"] = {"symmetric" if (t == b and l == r) else "asymmetric"}
    ops_levels = set()
    for o, s in zip(op, stride):  # each axis exercises its own output padding
        ops_levels.add(str(o))
        if o == s - 1:
            ops_levels.add("s-1")
    levels["output_padding"] = ops_levels
    return levels


def pairs_of(levels: dict[str, set[str]], parameters: list[str] = PARAMETERS) -> Iterable[tuple]:
    """Every ((param_a, value_a), (param_b, value_b)) a classified case covers, a before b."""
    for a, b in itertools.combinations(parameters, 2):
        for va in levels[a]:
            for vb in levels[b]:
                yield (a, va), (b, vb)


def required_pairs(parameters: list[str] = PARAMETERS) -> list[tuple]:
    return [((a, va), (b, vb)) for a, b in itertools.combinations(parameters, 2)
            for va in REQUIRED[a] for vb in REQUIRED[b]]


# --------------------------------------------------------------------------- measuring a suite


@dataclass
class Coverage:
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


def measure(cases, report: Optional[dict] = None) -> Coverage:
    """Classify every case; with a report, remember which backend ran which case."""
    cov = Coverage()
    if report:
        cov.backends = list(report.get("environment", {}).get("backends", {}))
        for r in report["results"]:
            cov.verdicts.setdefault(r["case"], {})[r["backend"]] = r["verdict"]
            if r["verdict"] in NOT_RUN:
                cov.reasons.setdefault(r["case"], {})[r["backend"]] = r.get("reason") or ""
        if not cov.backends:
            cov.backends = sorted({r["backend"] for r in report["results"]})
    for case in cases:
        if case.expects_error:
            cov.error_cases += 1
            cov.errors[case.id] = cov.verdicts.get(case.id, {})
            continue
        cov.cases += 1
        levels = classify(case.canonical_params(), case.dtype, case.common.data.model_dump())
        for param in PARAMETERS:
            for value in levels[param]:
                cov.values[(param, value)].append(case.id)
        for pair in pairs_of(levels):
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
    """The ``conform coverage`` text."""
    from harness.pairwise import explain_uncovered

    lines: list[str] = []
    head = f"conform coverage: {cov.cases} cases (+ {cov.error_cases} error cases, counted apart)"
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
    for param in PARAMETERS:
        seen = [v for v in REQUIRED[param]] + sorted(v for (p, v) in cov.values if p == param
                                                     and v not in REQUIRED[param])
        for value in seen:
            ids = cov.values.get((param, value), [])
            extra = "" if value in REQUIRED[param] else "  (extra)"
            row = f"  {param:15} {value:11} {len(ids):>6}"
            if cov.backends:
                ran = cov.ran(ids)
                row += "".join(f" {ran[b]:>{max(width, 6)}}" for b in cov.backends)
            lines.append(row + extra + ("   NOT COVERED" if not ids else ""))
    lines.append("")

    # ---- pairs
    wanted = required_pairs()
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
    wanted = required_pairs()
    return {
        "cases": cov.cases, "error_cases": cov.error_cases, "backends": cov.backends,
        "values": {f"{p}={v}": {"cases": len(ids), "ran": cov.ran(ids)} for (p, v), ids in cov.values.items()},
        "pairs": {_pair_name(p): {"cases": len(cov.pairs.get(p, [])), "ran": cov.ran(cov.pairs.get(p, []))}
                  for p in wanted},
        "uncovered": [_pair_name(p) for p in wanted if not cov.pairs.get(p)],
    }
