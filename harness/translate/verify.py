"""Checking a translation by running both calls natively: an in-memory claim run by ``harness.claims``.

The claim's two sides are the source call as given and the translated call, swept over input sizes
around the given one (``sizes``): at each, the source's native parameters mean what ``from_native`` says
there, and the target side is the printed call's meaning there. For an ``exact`` translation that is
``from_native`` of the printed parameters (the claim a person would write); otherwise the printed call
is native parameters plus the program's emulation, so at each size the translation of the source's
meaning there (``core.best_target``) must pass the same native parameters with the same emulation notes,
or the printed call depends on the input size and the translation breaks there. Sizes where the source
call itself is one the canonical semantics rejects (a tf.nn ``output_shape`` fixes the input size) are
left out and counted. A size at which either call would need more than the memory budget (``--max-memory``,
else half the memory available, as for cases) is refused before anything runs (``TranslateInputError``). Both sides then run in their workers on the same operands and are judged side against side
(``harness.claims.judge``): the translation holds where every point passes.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from harness.backends import backend_class
from harness.backends.base import NativeParamError, Unsupported
from harness.cases import Case
from harness.claims.load import ClaimSpec, Point, Side, over_budget
from harness.claims.run import ClaimOptions, run_claims
from harness.divergences import Registry
from harness.memory import Budget, default_memory_budget
from harness.translate.core import (Translation, best_target, claim_spec, in_layout, layout_of, meaning_case,
                                    point_at)
from harness.translate.parse import TranslateInputError

DEFAULT_SHAPES = 6
MAX_SHAPES = 64          # a claim's sweep limit (harness.claims.model.MAX_SWEEP_POINTS)
#: (ΔN, ΔH, ΔW) around the given input, in the order tried: odd and even sizes, unequal H and W, a batch.
OFFSETS = [(0, 0, 0), (0, 1, 1), (0, 1, 0), (0, 0, 1), (1, 2, 3), (0, -1, -1), (0, 3, 2), (1, 0, 0),
           (0, 5, 4), (0, -2, 1), (0, 2, 2), (0, 7, 6)]


@dataclass
class Verification:
    asked: int
    checked: list = field(default_factory=list)     # NCHW inputs that ran and passed
    left_out: list = field(default_factory=list)    # (NCHW input, why the source call is invalid there)
    broken: Optional[dict] = None                   # {"input": NCHW, "reason": ...} of the first break
    max_abs_diff: float = 0.0
    ratio: float = 0.0                              # of the allowed difference, worst over the points
    duration_s: float = 0.0                         # wall time of the run, workers' start included

    @property
    def verified(self) -> bool:
        return self.broken is None and len(self.checked) > 0


def sizes(nchw: list, count: int) -> list[list[int]]:
    """Up to ``4·count + 8`` distinct NCHW inputs around ``nchw`` (it first), in the order tried."""
    n, c, h, w = nchw
    out: list[list[int]] = []
    extra = ((0, k, k + 1) for k in range(9, 10_000))
    for dn, dh, dw in [*OFFSETS, *extra]:
        shape = [n + dn, c, h + dh, w + dw]
        if min(shape) >= 1 and shape not in out:
            out.append(shape)
        if len(out) >= 4 * count + 8:
            break
    return out


def verify(tr: Translation, count: int = DEFAULT_SHAPES, timeout_s: float = 120.0,
           registry: Optional[Registry] = None, memory_limit: Optional[int] = None) -> Verification:
    """Run both calls natively over ``count`` input sizes (the given one first)."""
    result = Verification(asked=count)
    spec = claim_spec(tr.op, tr.source, tr.target, tr.source_native, tr.nchw)
    spec.claim.sides[tr.target] = dict(tr.native)
    for nchw in sizes(tr.nchw, count):
        if len(spec.points) >= count:
            break
        try:
            spec.points.append(_point(tr, spec, nchw))
        except _LeftOut as exc:
            result.left_out.append((nchw, str(exc)))
        except _Breaks as exc:
            result.broken = {"input": nchw, "reason": str(exc)}
            break
    _check_budget(spec, Budget.for_backends(memory_limit or default_memory_budget(), [tr.source, tr.target]))
    started = time.monotonic()
    if spec.points:
        _run(spec, tr, result, timeout_s, registry, memory_limit)
    result.duration_s = time.monotonic() - started     # the workers' start included
    return result


def _check_budget(spec: ClaimSpec, budget: Budget) -> None:
    for point in spec.points:
        for side in point.sides:
            refused = over_budget(side.backend, side.case, budget)
            if refused:
                raise TranslateInputError(f"verifying on input {'×'.join(map(str, point.input))} (NCHW): {refused}; "
                                          "--no-verify prints the translation without running it")


class _LeftOut(Exception):
    """The source call is invalid at this input size: nothing to compare there."""


class _Breaks(Exception):
    """The printed call does not hold at this input size, seen before anything runs."""


def _point(tr: Translation, spec: ClaimSpec, nchw: list) -> Point:
    """Both sides at one input."""
    point = point_at(spec, nchw)
    try:
        fields = backend_class(tr.source).from_native(tr.op, dict(tr.source_native),
                                                      in_layout(nchw, layout_of(tr.source_case)))
    except NativeParamError as exc:      # e.g. a tf.nn output_shape whose batch is another input's
        raise _LeftOut(str(exc)) from None
    source = meaning_case(spec, point, tr.source, fields)
    if source.resolved is None:
        raise _LeftOut(source.invalid_reason)
    try:
        target = _target(tr, spec, point, fields, source)
    except (NativeParamError, TranslateInputError) as exc:
        raise _Breaks(f"the translated call has no meaning there: {exc}") from None
    point.sides += [Side(tr.source, dict(tr.source_native), source, 0), Side(tr.target, dict(tr.native), target, 0)]
    return point


def _target(tr: Translation, spec: ClaimSpec, point: Point, fields: dict, source: Case) -> Case:
    """The printed call's meaning at ``point``: ``from_native`` of it, or (emulated) the source's meaning, when
    the translation there is the printed one."""
    if tr.exact:
        target_fields = backend_class(tr.target).from_native(tr.op, dict(tr.native), in_layout(point.input, tr.layout))
        return meaning_case(spec, point, tr.target, target_fields)
    try:
        program, native, _, target = best_target(spec, point, tr.target, fields, source)
    except Unsupported as exc:
        raise _Breaks(f"{tr.target} cannot pose the source's meaning there: {exc}") from None
    if native != tr.native or tuple(program.notes) != tr.notes or layout_of(target) != tr.layout:
        raise _Breaks(_differs(tr, native, program.notes))
    return target


def _differs(tr: Translation, native: dict, notes) -> str:
    changed = [f"{k}={native.get(k)!r} (printed: {tr.native.get(k)!r})" for k in sorted(set(native) | set(tr.native))
               if native.get(k) != tr.native.get(k)]
    said = "; ".join(changed) if changed else "emulated as: " + "; ".join(notes)
    return f"the translation depends on the input size: {tr.target} needs {said} there"


def _run(spec: ClaimSpec, tr: Translation, result: Verification, timeout_s: float, registry, memory_limit) -> None:
    with tempfile.TemporaryDirectory(prefix="conform-translate-") as out:
        options = ClaimOptions(backends=[tr.source, tr.target], out=Path(out), timeout_s=timeout_s, jobs=2,
                               registry=registry or Registry(), memory_limit=memory_limit)
        record = run_claims([spec], options)[0]
    for point in record["points"]:
        if point["verdict"] != "pass":
            reason = point["reason"] or point["verdict"]
            explanation = record.get("breaking", {}).get("explanation") if point["id"] == record.get("first_break") \
                else None
            result.broken = {"input": point["input"], "verdict": point["verdict"], "reason": reason,
                             "explanation": explanation, "max_abs_diff": point.get("max_abs_diff")}
            return
        result.checked.append(point["input"])
        result.max_abs_diff = max(result.max_abs_diff, point.get("max_abs_diff") or 0.0)
        result.ratio = max(result.ratio, point.get("ratio") or 0.0)
