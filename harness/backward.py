"""A case's backward pass in the parent: which gradients it has, the cotangent and the oracle's gradients, and
the judgement of a backend's answer as one result per gradient (Note [Gradients] in
``harness/backends/autodiff.py``).

A gradient result is judged like an output (``harness.compare.judge``): shape, values against the
independent float64 gradient within the operator's gradient error bound, NaN/Inf positions. Accumulation is
judged at the case dtype whatever a backend declares for its forward kernels (its backward kernels are
others). When the backward call fails in its *forward* steps (the framework rejects the call, or the output
has the wrong shape so no cotangent fits; a crash or hang when the forward call alone crashes or hangs too),
each gradient result repeats that verdict with ``forward_failed: true``; the registry then classifies it with
the forward's entries.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

from harness import ops
from harness.backends.base import Call, Outcome
from harness.cases import Case
from harness.compare import Judgement, Reference, judge
from harness.data import make_arrays
from harness.worker import Crash, Timeout

MODES = ("forward", "backward", "both")


def gradient_operands(case: Case) -> tuple[str, ...]:
    """The operands whose gradients a backward run of ``case`` judges; none for a call the semantics rejects
    (its backward pass is the rejection) or an operator without a gradient."""
    op = ops.get(case.op)
    if op.gradient is None or case.resolved is None or case.expects_error or case.expected_shape is None:
        return ()
    present = op.shapes(case.params)
    return tuple(name for name in op.gradient.operands if name in present)


def planned(case: Case, mode: str) -> tuple[Optional[str], ...]:
    """The results a run in ``mode`` has for ``case``: None (the forward result) and/or gradient operands.
    A case without gradients runs forward whatever the mode, so a rejection is still checked."""
    grads = gradient_operands(case) if mode in ("backward", "both") else ()
    return ((None,) if mode != "backward" or not grads else ()) + grads


def prepare(case: Case, call: Call, gradients: tuple[str, ...]) -> tuple[Call, dict[str, Reference]]:
    """The backward call (the forward's operands plus the cotangent ``dy``) and each gradient's reference."""
    spec = ops.get(case.op).gradient
    params = call.params
    dy = make_arrays({"dy": tuple(case.expected_shape)}, case.common.data.model_dump(), case.dtype)["dy"]
    values = spec.vjp(params, call.arrays, dy)
    magnitudes = spec.magnitude(params, call.arrays, dy)
    bounds = spec.error_bounds(params, call.arrays, dy)
    references = {name: Reference(output=values[name], magnitude=magnitudes[name],
                                  accumulation_length=bounds[name].accumulation_length,
                                  roundings=bounds[name].roundings, expected_shape=tuple(call.arrays[name].shape))
                  for name in gradients}
    return dataclasses.replace(call, arrays={**call.arrays, "dy": dy}, gradients=gradients), references


def judgements(case: Case, answer: Union[Outcome, Crash, Timeout], references: dict[str, Reference],
               timeout_s: float, forward_crashed: bool = False) -> list[tuple[str, Judgement, Optional[Outcome], dict]]:
    """``(gradient, judgement, outcome as the gradient's answer, extra record fields)`` per gradient.
    ``forward_crashed``: a crash or timeout of the backward call is the forward's (it crashes alone too)."""
    out = []
    for name, reference in references.items():
        extra: dict = {"forward_failed": True} if forward_crashed else {}
        outcome: Optional[Outcome] = None
        if isinstance(answer, Crash):
            judgement = Judgement("crash", reason=answer.reason)
        elif isinstance(answer, Timeout):
            judgement = Judgement("timeout", reason=f"no answer within {timeout_s:g} s; worker killed")
        elif answer.status == "error" and answer.origin == "framework" and answer.failed_in == "forward":
            extra["forward_failed"] = True
            judgement = Judgement("unexpected_error", reason=f"the forward call failed: {answer.error_message}")
            outcome = answer
        elif answer.status == "ok" and answer.gradients is None:
            extra["forward_failed"] = True
            judgement = Judgement("shape_mismatch", reason=f"the forward output's shape {list(answer.output.shape)} "
                                  f"!= expected {list(case.expected_shape)}: no gradient to compare")
            outcome = dataclasses.replace(answer, output=None)
        elif answer.status == "ok":
            outcome = dataclasses.replace(answer, output=answer.gradients[name],
                                          program=_gradient_program(answer, name))
            judgement = judge(outcome, reference, expects_error=False, dtype=case.dtype,
                              tolerance_override=_override(case), accumulation=case.dtype)
        else:   # unsupported, an adapter error, or the framework failing the backward pass itself
            outcome = answer
            judgement = judge(answer, reference, expects_error=False, dtype=case.dtype)
            if answer.status == "error" and answer.origin == "framework":
                judgement.reason = f"the gradient failed: {judgement.reason}"
        if isinstance(answer, Outcome) and answer.gradient_call:
            extra["gradient_call"] = answer.gradient_call
        out.append((name, judgement, outcome, extra))
    return out


def _gradient_program(answer: Outcome, name: str):
    """The backward program with its ``output`` the gradient's target, so a reproducer compares that gradient."""
    program = answer.program
    targets = dict(program.gradients) if program is not None else {}
    return dataclasses.replace(program, output=targets[name]) if name in targets else program


def _override(case: Case) -> Optional[dict]:
    return case.common.tolerance.model_dump() if case.common.tolerance else None
