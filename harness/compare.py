"""The comparator: tolerance model, metrics and verdicts (DESIGN.md §5).

Note [Tolerance model]
----------------------
A fixed ``rtol/atol`` is either loose enough to pass a one-pixel shift or
tight enough to fail legitimate float16 rounding. Instead each output element
gets its own bound from floating-point error analysis. With inputs already
rounded to the case dtype, an output element is a sum of ``K`` products plus
a bias, computed in precision ``u`` (unit roundoff of the case dtype) and
rounded once more to that dtype. Standard error analysis of a dot product
(Higham, *Accuracy and Stability*, §3.1) gives

    |ŷ − y| ≤ γ_K · Σ|x·w| + u·|y|,   γ_K = K·u / (1 − K·u)

where ``B = Σ|x·w| + |b|`` is ``conv2d_transpose(|x|, |w|) + |b|`` computed by
the oracle in float64. The worst case ``K·u`` is rarely approached: rounding
errors of a blocked or pairwise sum behave like a random walk, so we use

    bound = u · (2 + C·√K) · B + atol,   C = 4

(the 2 covers the final rounding and the bias addition; ``C·√K`` is a 4-sigma
random-walk growth). ``K`` is ``C_in/groups · kh · kw``. Where ``B = 0`` the
output must be exactly zero. A case may override the model with
``tolerance: {rtol, atol}`` (then ``bound = atol + rtol·|y_ref|``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from harness.data import UNIT_ROUNDOFF

GROWTH = 4.0
MANTISSA_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
MIN_EXPONENT = {"float16": -14, "bfloat16": -126, "float32": -126, "float64": -1022}

#: Verdicts that keep the gate green (DESIGN.md §6).
GREEN = {"pass", "unsupported", "skipped", "xfail"}


@dataclass
class Judgement:
    verdict: str
    metrics: Optional[dict[str, Any]] = None
    tolerance: Optional[dict[str, Any]] = None
    reason: str = ""


@dataclass
class Reference:
    """What the comparator needs from the oracle for one case."""

    output: Optional[np.ndarray]          # float64, case layout (None: the semantics rejects the call)
    magnitude: Optional[np.ndarray]       # B = conv2d_transpose(|x|, |w|) + |b|
    accumulation_length: int = 1
    expected_shape: Optional[tuple] = None


def tolerance_for(dtype: str, accumulation_length: int, override: Optional[dict] = None) -> dict[str, Any]:
    if override:
        return {"model": "override", "rtol": override.get("rtol", 0.0), "atol": override.get("atol", 0.0)}
    u = UNIT_ROUNDOFF[dtype]
    return {"model": "error-bound", "unit_roundoff": u, "accumulation_length": accumulation_length,
            "factor": u * (2 + GROWTH * np.sqrt(accumulation_length)), "atol": 0.0}


def bound(tolerance: dict, reference: Reference) -> np.ndarray:
    if tolerance["model"] == "override":
        return tolerance["atol"] + tolerance["rtol"] * np.abs(reference.output)
    return tolerance["factor"] * reference.magnitude + tolerance["atol"]


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """Spacing of ``dtype`` at ``values`` (subnormal spacing near zero)."""
    exponent = np.floor(np.log2(np.maximum(np.abs(values), np.finfo(np.float64).tiny)))
    exponent = np.maximum(exponent, MIN_EXPONENT[dtype])
    return np.exp2(exponent - (MANTISSA_BITS[dtype] - 1))


def metrics_for(actual: np.ndarray, ref: Reference, tolerance: dict, dtype: str) -> dict[str, Any]:
    """Per-result metrics; NaN/Inf must sit where the oracle has them, signed zero is ignored."""
    y = np.asarray(actual, dtype=np.float64)
    r = ref.output
    if y.size == 0:
        return {"max_abs_err": 0.0, "max_rel_err": 0.0, "max_ulp": 0.0, "mismatch_fraction": 0.0,
                "worst_index": None, "bound_ratio": 0.0, "nonfinite_mismatches": 0}
    finite_y, finite_r = np.isfinite(y), np.isfinite(r)
    # Non-finite values must match exactly (same NaN positions, same infinities).
    nonfinite_bad = (finite_y != finite_r) | (~finite_r & ~((np.isnan(y) & np.isnan(r)) | (y == r)))
    both = finite_y & finite_r
    diff = np.where(both, np.abs(y - r), 0.0)
    limit = bound(tolerance, ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff == 0, 0.0, diff / limit)
        rel = np.where(both & (r != 0), diff / np.abs(r), 0.0)
    ratio = np.where(nonfinite_bad, np.inf, ratio)
    bad = nonfinite_bad | (diff > limit)
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return {
        "max_abs_err": float(diff.max()),
        "max_rel_err": float(rel.max()),
        "max_ulp": float((diff / ulp(np.where(both, r, 0.0), dtype)).max()),
        "mismatch_fraction": float(bad.mean()),
        "worst_index": [int(i) for i in worst],
        "bound_ratio": float(ratio.max()),
        "nonfinite_mismatches": int(nonfinite_bad.sum()),
    }


def judge(outcome, ref: Reference, *, expects_error: bool, dtype: str,
          tolerance_override: Optional[dict] = None) -> Judgement:
    """Verdict for one backend outcome (an ``Outcome``; crashes/timeouts are judged by the runner)."""
    if outcome.status == "unsupported":
        return Judgement("unsupported", reason=outcome.detail)
    if expects_error:
        if outcome.status == "error":
            return Judgement("pass", reason="rejected as expected")
        return Judgement("missing_error", reason="the call was accepted but the case expects rejection")
    if outcome.status == "error":
        return Judgement("unexpected_error", reason=outcome.error_message)
    actual = np.asarray(outcome.output)
    if tuple(actual.shape) != tuple(ref.expected_shape):
        return Judgement("shape_mismatch",
                         reason=f"shape {list(actual.shape)} != expected {list(ref.expected_shape)}")
    tolerance = tolerance_for(dtype, ref.accumulation_length, tolerance_override)
    metrics = metrics_for(actual, ref, tolerance, dtype)
    verdict = "pass" if metrics["mismatch_fraction"] == 0 else "value_mismatch"
    reason = "" if verdict == "pass" else (
        f"{metrics['mismatch_fraction']:.2%} of elements outside the bound; worst at "
        f"{metrics['worst_index']} is {metrics['bound_ratio']:.3g}x its bound")
    return Judgement(verdict, metrics, tolerance, reason)


#: Backends built from the oracle's own definition: they cannot out-vote it.
ORACLE_DERIVED = {"numpy"}


def agreement(outputs: dict[str, np.ndarray], ref: Reference, dtype: str,
              tolerance_override: Optional[dict] = None) -> dict[str, list[str]]:
    """Which backends agree with which (``"oracle"`` included), under the same tolerance model.

    Each output is within its bound ``b`` of the truth if correct, so two correct
    outputs are within ``2b`` of each other (triangle inequality); NaN/Inf must
    sit at the same positions.
    """
    tolerance = tolerance_for(dtype, ref.accumulation_length, tolerance_override)
    limit = bound(tolerance, ref)
    names = sorted(outputs)
    partners: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        if metrics_for(outputs[name], ref, tolerance, dtype)["mismatch_fraction"] == 0:
            partners[name].append("oracle")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ya, yb = np.asarray(outputs[a], np.float64), np.asarray(outputs[b], np.float64)
            same_nonfinite = np.array_equal(np.isfinite(ya), np.isfinite(yb))
            with np.errstate(invalid="ignore"):
                close = np.all(np.where(np.isfinite(ya) & np.isfinite(yb), np.abs(ya - yb) <= 2 * limit, True))
            if same_nonfinite and close:
                partners[a].append(b)
                partners[b].append(a)
    return partners


def suspect_oracle(partners: dict[str, list[str]]) -> bool:
    """True when independent backends agree among themselves and none agrees with the oracle."""
    independent = [name for name in partners if name not in ORACLE_DERIVED]
    if any("oracle" in partners[name] for name in independent):
        return False
    return any(other in independent for name in independent for other in partners[name])
