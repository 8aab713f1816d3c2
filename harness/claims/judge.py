"""Judging one claim point: side against side (DESIGN.md §8 "Claims").

Each side is first judged against the float64 oracle of its *own* canonical
meaning (``harness.compare.judge``), which says whether the framework did what
its native call means; that per-side verdict is what the registry explains
(F1: mindspore.nn's ``pad_mode='valid'`` returns H·s rows when K < s). The
point's verdict compares the sides with each other, in NCHW:

* every side rejects the call: ``pass`` (same error behaviour);
* one side raises and another returns: ``unexpected_error`` (a side that
  crashed or timed out: ``crash``/``timeout``; one that cannot pose the call:
  ``unsupported``, the claim unchecked there);
* different output shapes: ``shape_mismatch``;
* values further apart than both sides' error bounds together, anywhere
  (``|y_a − y_b| > bound_a + bound_b``, each bound from that side's own oracle
  and accumulation precision; Note [Tolerance model] in ``harness/compare.py``):
  ``value_mismatch``, else ``pass``. Two correct implementations of one
  function are never further apart than that, so a break is never rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from harness.backends import backend_class
from harness.backends.base import Outcome
from harness.claims.load import Side
from harness.compare import Judgement, Reference, bound, judge, pair_distance, tolerance_for


@dataclass
class SideRun:
    """One side's answer at one point, and its judgement against its own canonical meaning."""

    side: Side
    reference: Reference
    outcome: Optional[Outcome]           # None: crashed or timed out (``judgement`` says which)
    judgement: Judgement

    @property
    def nchw(self) -> Optional[np.ndarray]:
        """The side's output in NCHW (None unless it returned one)."""
        if self.outcome is None or self.outcome.status != "ok":
            return None
        return _to_nchw(np.asarray(self.outcome.output, np.float64), self.side.layout)

    def bound_nchw(self) -> Optional[np.ndarray]:
        """Its per-element error bound, from its own oracle (None where its meaning has no output)."""
        ref = self.reference
        if ref.output is None or self.outcome is None or self.outcome.status != "ok":
            return None
        if tuple(np.shape(self.outcome.output)) != tuple(ref.output.shape):
            return None
        case = self.side.case
        override = case.common.tolerance.model_dump() if case.common.tolerance else None
        accumulation = backend_class(self.side.backend).accumulation_for(case.dtype, self.outcome)
        tolerance = tolerance_for(case.dtype, ref.accumulation_length, override, accumulation, ref.roundings)
        return _to_nchw(bound(tolerance, ref), self.side.layout)


def judge_side(side: Side, reference: Reference, outcome: Outcome) -> Judgement:
    case = side.case
    return judge(outcome, reference, expects_error=case.expects_error, dtype=case.dtype,
                 tolerance_override=case.common.tolerance.model_dump() if case.common.tolerance else None,
                 accumulation=backend_class(side.backend).accumulation_for(case.dtype, outcome))


def _to_nchw(array: np.ndarray, layout: str) -> np.ndarray:
    return array.transpose(0, 3, 1, 2) if layout == "NHWC" and array.ndim == 4 else array


def compare_sides(runs: list[SideRun]) -> tuple[Judgement, Optional[dict]]:
    """The point's verdict between the sides, and the pair distance (``max_abs_diff``, ``ratio``, ``pair``,
    ``worst_index``) of the two furthest apart when every side returned a value."""
    for verdict in ("crash", "timeout"):
        broken = [r for r in runs if r.outcome is None and r.judgement.verdict == verdict]
        if broken:
            return Judgement(verdict, reason=f"{broken[0].side.backend}: {broken[0].judgement.reason}"), None
    for run in runs:
        if run.outcome.status == "unsupported":
            return Judgement("unsupported", reason=f"{run.side.backend} cannot run this call: "
                                                   f"{run.outcome.detail}"), None
        if run.outcome.status == "error" and run.outcome.origin == "adapter":
            return Judgement("unexpected_error", reason=f"{run.side.backend}: {run.judgement.reason}"), None
    raised = [r for r in runs if r.outcome.status == "error"]
    if len(raised) == len(runs):
        return Judgement("pass", reason="every side rejects the call"), None
    if raised:
        returned = next(r for r in runs if r.outcome.status == "ok")
        first = raised[0]
        return Judgement("unexpected_error", reason=(
            f"{first.side.backend} raises {first.outcome.error_type}: {first.outcome.error_message}; "
            f"{returned.side.backend} returns shape {list(returned.nchw.shape)}")), None
    outputs = [(r, r.nchw) for r in runs]
    base, y0 = outputs[0]
    for other, y in outputs[1:]:
        if y.shape != y0.shape:
            return Judgement("shape_mismatch", reason=(
                f"{base.side.backend} returns {list(y0.shape)}, {other.side.backend} {list(y.shape)} (NCHW)")), None
    worst: Optional[dict] = None
    for i, (a, ya) in enumerate(outputs):
        for b, yb in outputs[i + 1:]:
            distance = _distance(a, ya, b, yb)
            if worst is None or distance["ratio"] > worst["ratio"]:
                worst = distance
    if worst["ratio"] > 1:
        pair = " and ".join(worst["pair"])
        return Judgement("value_mismatch", metrics=worst, reason=(
            f"{pair} differ by up to {worst['max_abs_diff']:.3g} (at NCHW index {worst['worst_index']}), "
            f"{_times(worst['ratio'])} the most two correct implementations could differ there")), worst
    return Judgement("pass", metrics=worst), worst


def _distance(a: SideRun, ya: np.ndarray, b: SideRun, yb: np.ndarray) -> dict:
    la, lb = a.bound_nchw(), b.bound_nchw()
    # A side whose own meaning has another output shape (or none) has no bound of its own: it borrows the
    # other's; with neither, the outputs must be equal.
    la, lb = (la if la is not None else lb), (lb if lb is not None else la)
    if la is None:
        la = lb = np.zeros(ya.shape)
    distance = pair_distance(ya, yb, la, lb)
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isfinite(ya) & np.isfinite(yb), np.abs(ya - yb), np.inf * (ya != yb))
    worst = [int(i) for i in np.unravel_index(int(np.nanargmax(diff)), diff.shape)] if diff.size else None
    return {"pair": [a.side.backend, b.side.backend], "max_abs_diff": distance["max_abs_diff"],
            "ratio": distance["ratio"], "worst_index": worst}


def _times(ratio: float) -> str:
    return "infinitely many times" if not np.isfinite(ratio) else f"{ratio:.3g}×"
