"""The comparator: tolerance model, metrics and verdicts (DESIGN.md §5).

Note [Tolerance model]
----------------------
A fixed ``rtol/atol`` is either loose enough to pass a one-pixel shift or
tight enough to fail legitimate float16 rounding. Instead each output element
gets its own bound from floating-point error analysis. Inputs are rounded to
the case dtype before anyone sees them, so input quantisation is never counted.
The operator states what one output element is (``OpSpec.error_bound`` and
``OpSpec.magnitude``, derived in its own Note): a sum of at most ``K`` terms
accumulated with unit roundoff ``u_acc``, rounded to the case dtype (unit
roundoff ``u``) ``r`` times afterwards, and the magnitude ``B``, the same
computation on absolute values. For a convolution the terms are products,
``K = C_in/groups · kh · kw``, ``r = 2`` (after the sum, after the bias) and
``B = Σ|x·w| + |b|``; an average is a sum divided by a count (``r = 2``); a
max is exact (``K = 0``, ``r = 0``: the bound is 0). Standard error analysis
of a dot product (Higham, *Accuracy and Stability of Numerical Algorithms*,
§3.1) gives, for ``r = 2``::

    |ŷ − y| ≤ u·(|y| + B) + γ_K·B,     γ_K = K·u_acc / (1 − K·u_acc)

The worst case ``K·u_acc`` needs every rounding error to align; for blocked and
pairwise sums they behave like a random walk (Higham & Mary, "A new approach
to probabilistic rounding error analysis", 2019: ``t·√K·u`` holds with
probability ≥ 1 − 2·exp(−t²/2)), so we use ``f(K) = C·√K`` with ``C = 4``.

Underflow. The relative model above holds only for results in the normal
range. With gradual underflow (IEEE 754's default) each operation obeys
(Higham §2.1, eq. (2.8))::

    fl(a op b) = (a op b)(1 + δ) + η,   |δ| ≤ u,  |η| ≤ u·λ,  δ·η = 0

where ``λ`` is the dtype's smallest normal number, so ``u·λ`` is half the
subnormal spacing, and ``η = 0`` for addition and subtraction (a sum that
lands in the subnormal range is exact). Per rounding the error is therefore
``u·max(|z|, λ)``: relative in the normal range, half a subnormal spacing
below it, never both. The roundings that can touch one element:

* the ``K`` products (or fused multiply-adds, or per-tap partial results
  converted before summing): each may add ``u_acc·λ_acc`` absolutely, in
  total ``K·u_acc·λ_acc`` (to first order, like the rest of the model: later
  roundings scale it by ``1 + O(u)``); the partial sums add nothing (``η = 0``);
* the ``r`` roundings into the case dtype: of the result (``|y|``) and, for
  ``r = 2``, of the sum before the bias or the division (``|s| ≤ B``):
  ``u·max(|y|, λ) + u·max(B, λ)``.

Together::

    bound = u·(max(|y_ref|, λ) + max(B, λ)) + u_acc·C·√K·B + K·u_acc·λ_acc + atol

For normal ``|y_ref|`` and ``B`` this is the relative model unchanged, so the
underflow terms cannot hide an error there; below ``λ`` they allow what a
correctly rounded subnormal result needs (a float16 element of 2.2e-6 has
spacing 6e-8, far more than ``u·2·2.2e-6``). A flush-to-zero kernel is not
IEEE gradual underflow and errs by up to ``λ``: that is reported, not
tolerated. Where ``B = 0`` every product is an exact zero and the output must
be exactly zero (plus ``atol``).

``u_acc`` is the accumulation precision of the *call*: an adapter that knows
the kernel path the framework took reports it (``Native.accumulation``, e.g.
PyTorch's ``SlowTranspose2d`` rounds per tap in the case dtype while its
oneDNN path accumulates float16 in float32); otherwise the backend's
declaration (``Backend.accumulation``) applies, and without one the case
dtype, which is the conservative choice. A case may override the model with
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
    magnitude: Optional[np.ndarray]       # B (OpSpec.magnitude), e.g. conv2d_transpose(|x|, |w|) + |b|
    accumulation_length: int = 1          # K and r of the operator's ErrorBound
    expected_shape: Optional[tuple] = None
    roundings: int = 2


def tolerance_for(dtype: str, accumulation_length: int, override: Optional[dict] = None,
                  accumulation: Optional[str] = None, roundings: int = 2) -> dict[str, Any]:
    """The tolerance of one result: the error-bound model's constants, or the case's override.

    ``roundings`` (``r``) is written only when it is not 2, the value every report
    before it implies.
    """
    if override:
        return {"model": "override", "rtol": override.get("rtol", 0.0), "atol": override.get("atol", 0.0)}
    accumulation = accumulation or dtype
    tolerance = {"model": "error-bound", "dtype": dtype, "unit_roundoff": UNIT_ROUNDOFF[dtype],
                 "accumulation": accumulation, "accumulation_length": accumulation_length,
                 "accumulation_factor": UNIT_ROUNDOFF[accumulation] * GROWTH * float(np.sqrt(accumulation_length)),
                 "smallest_normal": smallest_normal(dtype),
                 "underflow": accumulation_length * UNIT_ROUNDOFF[accumulation] * smallest_normal(accumulation),
                 "atol": 0.0}
    if roundings != 2:
        tolerance["roundings"] = roundings
    return tolerance


def smallest_normal(dtype: str) -> float:
    """``λ``: the smallest positive normal number of ``dtype`` (``u·λ`` is half its subnormal spacing)."""
    return float(2.0 ** MIN_EXPONENT[dtype])


def bound(tolerance: dict, reference: Reference) -> np.ndarray:
    """Per-element bound on |y − y_ref| (Note [Tolerance model])."""
    if tolerance["model"] == "override":
        return tolerance["atol"] + tolerance["rtol"] * np.abs(reference.output)
    magnitude = reference.magnitude
    # Reports written before the underflow terms existed lack them: 0 gives their bound back.
    floor = tolerance.get("smallest_normal", 0.0)
    roundings = tolerance.get("roundings", 2)
    rounding = np.maximum(np.abs(reference.output), floor) if roundings >= 1 else 0.0
    if roundings >= 2:
        rounding = rounding + np.maximum(magnitude, floor)
    model = (tolerance["unit_roundoff"] * rounding + tolerance["accumulation_factor"] * magnitude
             + tolerance.get("underflow", 0.0))
    return np.where(magnitude > 0, model, 0.0) + tolerance["atol"]


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """Spacing of ``dtype`` at ``values`` (subnormal spacing near zero)."""
    exponent = np.floor(np.log2(np.maximum(np.abs(values), np.finfo(np.float64).tiny)))
    exponent = np.maximum(exponent, MIN_EXPONENT[dtype])
    return np.exp2(exponent - (MANTISSA_BITS[dtype] - 1))


def _nonfinite_mismatches(y: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Where NaN/±Inf do not sit at the same positions (NaN only matches NaN, Inf only the same Inf)."""
    finite_y, finite_r = np.isfinite(y), np.isfinite(r)
    return (finite_y != finite_r) | (~finite_r & ~((np.isnan(y) & np.isnan(r)) | (y == r)))


#: Elements judged at a time: every temporary of the comparison is a block, so judging an output of any
#: size needs a few MB beyond the arrays themselves (the parent's memory budget counts on it).
BLOCK = 1 << 18


def _blocks(*arrays: Optional[np.ndarray]):
    """``(start, [block of each array])`` over the flattened arrays (``None`` stays ``None``)."""
    flat = [None if a is None else np.asarray(a).reshape(-1) for a in arrays]
    size = next(f.size for f in flat if f is not None)
    for start in range(0, size, BLOCK):
        yield start, [None if f is None else f[start:start + BLOCK] for f in flat]


def metrics_for(actual: np.ndarray, ref: Reference, tolerance: dict, dtype: str) -> dict[str, Any]:
    """Per-result metrics; NaN/Inf must sit where the oracle has them, signed zero is ignored."""
    actual = np.asarray(actual)
    if actual.size == 0:
        return {"max_abs_err": 0.0, "max_rel_err": 0.0, "max_ulp": 0.0, "mismatch_fraction": 0.0,
                "worst_index": None, "bound_ratio": 0.0, "nonfinite_mismatches": 0,
                "worst_actual": None, "worst_expected": None, "worst_bound": None}
    max_abs = max_rel = max_ulp = 0.0
    bad_count = nonfinite_count = worst = 0
    worst_ratio = -1.0
    for start, (y, r, magnitude) in _blocks(actual, ref.output, ref.magnitude):
        y = y.astype(np.float64)
        finite_y, finite_r = np.isfinite(y), np.isfinite(r)
        nonfinite_bad = _nonfinite_mismatches(y, r)
        both = finite_y & finite_r
        limit = bound(tolerance, Reference(r, magnitude))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            diff = np.where(both, np.abs(y - r), 0.0)
            ratio = np.where(diff == 0, 0.0, diff / limit)
            rel = np.where(both & (r != 0), diff / np.abs(r), 0.0)
        ratio = np.where(nonfinite_bad, np.inf, ratio)
        bad_count += int(np.count_nonzero(nonfinite_bad | (diff > limit)))
        nonfinite_count += int(nonfinite_bad.sum())
        k = int(np.argmax(ratio))
        if ratio[k] > worst_ratio:       # strictly greater: the first worst element wins, as np.argmax
            worst_ratio, worst = float(ratio[k]), start + k
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float(rel.max()))
        max_ulp = max(max_ulp, float((diff / ulp(np.where(both, r, 0.0), dtype)).max()))
    at = (slice(worst, worst + 1),)
    worst_ref = Reference(ref.output.reshape(-1)[at], ref.magnitude.reshape(-1)[at])
    return {
        "max_abs_err": max_abs,
        "max_rel_err": max_rel,
        "max_ulp": max_ulp,
        "mismatch_fraction": bad_count / actual.size,
        "worst_index": [int(i) for i in np.unravel_index(worst, actual.shape)],
        "bound_ratio": worst_ratio,
        "nonfinite_mismatches": nonfinite_count,
        # The worst element itself, so a reader sees the numbers and not only where they are.
        "worst_actual": float(actual.reshape(-1)[worst]), "worst_expected": float(worst_ref.output[0]),
        "worst_bound": float(bound(tolerance, worst_ref)[0]),
    }


def judge(outcome, ref: Reference, *, expects_error: bool, dtype: str,
          tolerance_override: Optional[dict] = None, accumulation: Optional[str] = None) -> Judgement:
    """Verdict for one backend outcome (an ``Outcome``; crashes/timeouts are judged by the runner)."""
    if outcome.status == "unsupported":
        return Judgement("unsupported", reason=outcome.detail)
    if outcome.status == "error" and getattr(outcome, "origin", "framework") == "adapter":
        return Judgement("unexpected_error", reason=f"adapter error, not the framework's answer (a conform bug): "
                                                    f"{outcome.error_type}: {outcome.error_message}")
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
    tolerance = tolerance_for(dtype, ref.accumulation_length, tolerance_override, accumulation, ref.roundings)
    metrics = metrics_for(actual, ref, tolerance, dtype)
    verdict = "pass" if metrics["mismatch_fraction"] == 0 else "value_mismatch"
    if metrics["nonfinite_mismatches"]:
        worst = "is NaN or ±Inf where the oracle's value is not the same"
    elif np.isinf(metrics["bound_ratio"]):
        worst = "differs where its bound is 0 (the value must be exact)"
    else:
        worst = f"is {metrics['bound_ratio']:.3g}x its bound"
    reason = "" if verdict == "pass" else (
        f"{metrics['mismatch_fraction']:.2%} of elements outside the bound; worst at {metrics['worst_index']} {worst}")
    return Judgement(verdict, metrics, tolerance, reason)


#: Backends built from the oracle's own definition: they cannot out-vote it.
ORACLE_DERIVED = {"numpy"}


def agreement(outputs: dict[str, np.ndarray], ref: Reference, dtype: str,
              tolerance_override: Optional[dict] = None,
              accumulation: Optional[dict[str, str]] = None) -> dict[str, list[str]]:
    """Which backends agree with which (``"oracle"`` included), under the same tolerance model.

    Each output is within its bound ``b`` of the truth if correct, so two correct
    outputs are within ``b_a + b_b`` of each other (triangle inequality); NaN/Inf
    must sit at the same positions.
    """
    accumulation = accumulation or {}
    tolerances = {name: tolerance_for(dtype, ref.accumulation_length, tolerance_override, accumulation.get(name),
                                 ref.roundings)
                  for name in outputs}
    names = sorted(outputs)
    partners: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        if metrics_for(outputs[name], ref, tolerances[name], dtype)["mismatch_fraction"] == 0:
            partners[name].append("oracle")
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    for (a, b), distance in pair_distances(outputs, ref, tolerances, pairs).items():
        if distance["ratio"] <= 1:
            partners[a].append(b)
            partners[b].append(a)
    return partners


def suspect_oracle(partners: dict[str, list[str]]) -> bool:
    """True when independent backends agree among themselves and none agrees with the oracle."""
    independent = [name for name in partners if name not in ORACLE_DERIVED]
    if any("oracle" in partners[name] for name in independent):
        return False
    return any(other in independent for name in independent for other in partners[name])


def pair_distance(ya: np.ndarray, yb: np.ndarray, la: np.ndarray, lb: np.ndarray) -> dict[str, float]:
    """How far apart two outputs are, given each one's bound (``la``, ``lb``) per element.

    ``ratio`` is ``max |ya − yb| / (la + lb)``: two correct outputs are within
    ``la + lb`` of each other, so above 1 at least one of them is wrong; it can
    therefore never exceed 1 when both pass. ``tighter_ratio`` measures the
    same difference against the stricter of the two bounds, ``min(la, lb)``:
    above 1, the two differ by more than the more precise one guarantees (a
    port from it to the other changes results beyond its own error). NaN/Inf
    at different positions, or any difference where a bound is 0, count as inf.
    """
    ya, yb = np.asarray(ya, np.float64), np.asarray(yb, np.float64)
    if ya.size == 0:
        return {"ratio": 0.0, "tighter_ratio": 0.0, "max_abs_diff": 0.0}
    both = np.isfinite(ya) & np.isfinite(yb)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        diff = np.where(both, np.abs(ya - yb), 0.0)
        ratio = np.where(diff == 0, 0.0, diff / (la + lb))
        tighter = np.where(diff == 0, 0.0, diff / np.minimum(la, lb))
    mismatched = _nonfinite_mismatches(ya, yb)
    if mismatched.any():
        return {"ratio": np.inf, "tighter_ratio": np.inf, "max_abs_diff": float(diff.max())}
    return {"ratio": float(ratio.max()), "tighter_ratio": float(tighter.max()), "max_abs_diff": float(diff.max())}


def framework_spread(outputs: dict[str, np.ndarray], ref: Reference, dtype: str,
                     tolerance_override: Optional[dict] = None,
                     accumulation: Optional[dict[str, str]] = None) -> Optional[dict[str, Any]]:
    """The two outputs furthest apart (``pair_distance``), or None with fewer than two.

    The pair is chosen by ``tighter_ratio``: ``ratio`` hides a framework whose
    declared bound is wide (bfloat16 accumulation) behind that width, which is
    exactly the difference a porter needs to see. The caller decides which
    backends count (the runner passes frameworks only, not in-house kernels).
    """
    if len(outputs) < 2:
        return None
    accumulation = accumulation or {}
    tolerances = {name: tolerance_for(dtype, ref.accumulation_length, tolerance_override, accumulation.get(name),
                                 ref.roundings)
                  for name in outputs}
    names = sorted(outputs)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    distances = pair_distances(outputs, ref, tolerances, pairs)
    a, b = max(pairs, key=lambda p: (distances[p]["tighter_ratio"], distances[p]["ratio"],
                                     distances[p]["max_abs_diff"]))
    return {"pair": [a, b], **distances[a, b], "frameworks": names}


def pair_distances(outputs: dict[str, np.ndarray], ref: Reference, tolerances: dict[str, dict],
                   pairs: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, float]]:
    """``pair_distance`` of each pair over whole outputs, one block of elements at a time (``BLOCK``)."""
    worst = {pair: {"ratio": 0.0, "tighter_ratio": 0.0, "max_abs_diff": 0.0} for pair in pairs}
    names = sorted({name for pair in pairs for name in pair})
    for _, (r, magnitude, *ys) in _blocks(ref.output, ref.magnitude, *(outputs[name] for name in names)):
        block = dict(zip(names, ys))
        limits = {name: bound(tolerances[name], Reference(r, magnitude)) for name in names}
        for a, b in pairs:
            distance = pair_distance(block[a], block[b], limits[a], limits[b])
            worst[a, b] = {key: max(value, distance[key]) for key, value in worst[a, b].items()}
    return worst
