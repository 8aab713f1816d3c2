"""A case's backward pass in the parent: which gradients it has, the cotangent and the oracle's gradients, and
the judgement of a backend's answer as one result per gradient (Note [Gradients] in
``harness/backends/autodiff.py``).

A gradient result is judged like an output (``harness.compare.judge``): shape, values against the
independent float64 gradient within the operator's gradient error bound, NaN/Inf positions. Accumulation is
judged at the precision the backend declares or reports for the call (``Backend.accumulation_for``, as for
outputs: the frameworks' CPU kernels sum float16/bfloat16 in float32 in both directions; the case dtype where
nothing is declared). When the forward call fails (the framework rejects the call, crashes or hangs, or the
output has the wrong shape so no cotangent fits), each gradient result repeats that verdict with
``forward_failed: true`` and the registry classifies it with the forward's entries: in ``both`` mode no
backward call is made then; in ``backward`` mode a failing backward call is attributed by running the forward
call alone.
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
    (its backward pass is the rejection) or an operator without a gradient (``Case.gradients``; a
    ``harness.suite.CaseRef`` holds them from validation)."""
    return case.gradients


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


#: Verdicts of a forward call that produced no output to differentiate: its gradients repeat them.
FORWARD_FAILURES = ("unexpected_error", "shape_mismatch", "crash", "timeout")


def answered_in_forward(answer: Union[Outcome, Crash, Timeout]) -> Optional[bool]:
    """Whether the backward call failed so that the forward may be to blame (None: it did not fail there):
    a crash, a hang, or an error the framework raised before the gradient steps (a functional vjp runs the
    forward and linearises it in one call, so only the forward call alone can tell whose failure it is)."""
    if isinstance(answer, (Crash, Timeout)):
        return True
    if answer.status == "error" and answer.origin == "framework":
        return answer.failed_in == "forward"
    return None


def repeat_forward(record: dict, references: dict[str, Reference]) -> list[tuple[str, Judgement, None, dict]]:
    """The gradient judgements of a backend whose forward call failed (no backward call is made then)."""
    judgement = Judgement(record["verdict"], reason=f"the forward call failed: {record['reason']}")
    return [(name, judgement, None, {"forward_failed": True}) for name in references]


def judgements(case: Case, answer: Union[Outcome, Crash, Timeout], references: dict[str, Reference],
               timeout_s: float, forward_failed: bool = False,
               accumulation: Optional[dict[str, str]] = None) -> list[tuple[str, Judgement, Optional[Outcome], dict]]:
    """``(gradient, judgement, outcome as the gradient's answer, extra record fields)`` per gradient.

    ``forward_failed``: the forward call alone fails too, so a failure of this call is the forward's.
    ``accumulation``: gradient -> the precision the backend sums it in (``Backend.accumulation_for``).
    """
    out = []
    for name, reference in references.items():
        extra: dict = {}
        outcome: Optional[Outcome] = None
        if isinstance(answer, Outcome) and answer.status == "ok" and answer.gradients is None:
            forward_failed = True
            judgement = Judgement("shape_mismatch", reason=f"the forward output's shape {list(answer.output.shape)} "
                                  f"!= expected {list(case.expected_shape)}: no gradient to compare")
            outcome = dataclasses.replace(answer, output=None)
        elif isinstance(answer, Crash):
            judgement = Judgement("crash", reason=answer.reason)
        elif isinstance(answer, Timeout):
            judgement = Judgement("timeout", reason=f"no answer within {timeout_s:g} s; worker killed")
        elif answer.status == "ok" and name not in answer.gradients:
            judgement = Judgement("unexpected_error", reason=f"adapter error, not the framework's answer (a conform "
                                  f"bug): the backward program returned no gradient for {name!r}")
        elif answer.status == "ok":
            outcome = dataclasses.replace(answer, output=answer.gradients[name],
                                          program=_gradient_program(answer, name))
            judgement = judge(outcome, reference, expects_error=False, dtype=case.dtype,
                              accumulation=(accumulation or {}).get(name))   # a tolerance override: outputs only
        else:   # unsupported, an adapter error, or the framework failing the call
            outcome = answer
            judgement = judge(answer, reference, expects_error=False, dtype=case.dtype)
            if answer.status == "error" and answer.origin == "framework":
                whose = "the forward call" if forward_failed else "the gradient"
                judgement.reason = f"{whose} failed: {judgement.reason}"
        if forward_failed:
            extra["forward_failed"] = True
        if isinstance(answer, Outcome) and answer.gradient_call:
            extra["gradient_call"] = answer.gradient_call
        out.append((name, judgement, outcome, extra))
    return out


def _gradient_program(answer: Outcome, name: str):
    """The backward program with its ``output`` the gradient's target, so a reproducer compares that gradient."""
    program = answer.program
    targets = dict(program.gradients) if program is not None else {}
    return dataclasses.replace(program, output=targets[name]) if name in targets else program

