"""Plain words for the numbers a result carries: ``bound_ratio``, the worst element, the framework spread.

The terminal, summary.md and report.html phrase these the same way, so the
wording lives here, once. Everything reads report.json records, where
non-finite floats may be the strings ``"inf"`` / ``"nan"``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from harness.report.gradients import label

#: A case is listed as "frameworks far apart" when its two furthest frameworks differ by more than the
#: stricter of their two bounds (``spread.tighter_ratio`` > 1): below that, a test calibrated on the
#: more precise framework would accept the other one's output; above it, it would not.
FAR_APART = 1.0
#: Verdicts of a result whose values are within the oracle's bound.
WITHIN = {"pass", "xpass"}


def number(value: Any) -> Optional[float]:
    """A metric as a float (report.json writes inf/nan as strings), None if absent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return float(value) if isinstance(value, (int, float)) else None


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits, ``inf``/``nan`` spelled out."""
    x = number(value)
    if x is None:
        return "–"
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.{digits}g}"


def _whose_bound(tolerance: Optional[dict]) -> str:
    tolerance = tolerance or {}
    if tolerance.get("model") == "override":
        return "the case's own tolerance (atol + rtol·|expected|)"
    dtype, accumulation = tolerance.get("dtype"), tolerance.get("accumulation")
    if not dtype:
        return "its bound"
    how = f", summing in {accumulation}," if accumulation and accumulation != dtype else ""
    return f"the most a correct {dtype} implementation{how} could err there"


def bound_gloss(metrics: Optional[dict], tolerance: Optional[dict] = None) -> str:
    """What a result's ``bound_ratio`` means, in one sentence ("" when there is none).

    ``bound_ratio 2.16: the worst error is 2.16× the most a correct bfloat16 implementation, summing in
    float32, could err there; rounding cannot explain it.``
    """
    metrics = metrics or {}
    ratio = number(metrics.get("bound_ratio"))
    if ratio is None:
        return ""
    if math.isnan(ratio) or math.isinf(ratio):
        bad = number(metrics.get("nonfinite_mismatches")) or 0
        if bad:
            return (f"bound_ratio inf: {int(bad)} element(s) are NaN or ±Inf where the oracle's value differs "
                    "(or finite where the oracle's is not); no tolerance covers that.")
        if (tolerance or {}).get("model") == "override":
            return "bound_ratio inf: a difference where the case's own tolerance allows none (atol + rtol·|expected| = 0)."
        return "bound_ratio inf: a nonzero value where the result must be exactly 0 (every product there is 0)."
    if ratio == 0:
        return "bound_ratio 0: every element equals the oracle's value."
    share = f"{ratio:.3g}× " if ratio > 1 else f"{ratio:.0%} of " if ratio >= 0.01 else f"{ratio:.2g} of "
    verdict = ("; rounding cannot explain it" if ratio > 1
               else "; 1 would be exactly that limit, above 1 the result fails")
    return f"bound_ratio {ratio:.3g}: the worst error is {share}{_whose_bound(tolerance)}{verdict}."


def worst_element(metrics: Optional[dict]) -> str:
    """``at [0, 0, 3, 4]: 0.1235, expected 0.4561 (|diff| 0.3326, bound 0.01)``; "" without one."""
    metrics = metrics or {}
    if metrics.get("worst_index") is None or "worst_actual" not in metrics:
        return ""
    actual, expected = number(metrics.get("worst_actual")), number(metrics.get("worst_expected"))
    diff = ""
    if actual is not None and expected is not None and math.isfinite(actual) and math.isfinite(expected):
        diff = f"|diff| {fmt(abs(actual - expected))}, "
    return (f"at {metrics['worst_index']}: {fmt(actual, 7)}, expected {fmt(expected, 7)} "
            f"({diff}bound {fmt(metrics.get('worst_bound'))})")


def spread_line(spread: Optional[dict], verdicts: Optional[dict[str, str]] = None) -> str:
    """``tf.nn vs torch.functional: 1.64× apart in units of ... , both within the oracle's bound``; "" without one."""
    if not spread or len(spread.get("pair") or []) != 2:
        return ""
    a, b = spread["pair"]
    line = (f"{a} vs {b}: {fmt(spread.get('tighter_ratio'), 3)}× apart in units of the tighter of their two bounds "
            f"(max |Δ| {fmt(spread.get('max_abs_diff'))}; {fmt(spread.get('ratio'), 3)}× their combined bound)")
    verdicts = verdicts or {}
    if verdicts.get(a) in WITHIN and verdicts.get(b) in WITHIN:
        return line + ", both within the oracle's bound"
    if a in verdicts and b in verdicts:
        return line + f"; oracle: {a} {verdicts[a]}, {b} {verdicts[b]}"
    return line


SPREAD_GLOSS = ("Spread: the two frameworks whose outputs differ most (in-house kernels left out), "
                "measured against the tighter of their two bounds: above 1 they differ by more than the more "
                "precise one may err, so results move when porting between them. Against their combined "
                "bound, above 1 they cannot both be correct.")


def far_apart(results: list[dict]) -> list[tuple[str, dict, dict[str, str]]]:
    """(case, spread, verdict per backend) of the cases (a gradient result as ``case · ∂x``) whose two furthest frameworks are far apart
    (``FAR_APART``) although the oracle passes both, furthest first.

    A pair with a failing member is left out: that failure is already listed as one; what no other
    part of a report shows is two passing frameworks that differ more than either's bound suggests.
    """
    cases: dict[str, tuple[dict, dict[str, str]]] = {}
    for r in results:
        spread = r.get("spread")
        if spread and (number(spread.get("tighter_ratio")) or 0) > FAR_APART:
            cases.setdefault(label(r), (spread, {}))[1][r["backend"]] = r.get("original_verdict") or r["verdict"]
    found = [(case, spread, verdicts) for case, (spread, verdicts) in cases.items()
             if all(verdicts.get(b) in WITHIN for b in spread["pair"])]
    return sorted(found, key=lambda item: -(number(item[1].get("tighter_ratio")) or 0))
