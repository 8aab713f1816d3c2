"""The records of one case: each backend's calls through its worker, judged, as report.json holds them.

``run_backend`` makes one backend's forward call and, for a case run backward,
its backward call (one result per gradient, ``harness.backward``); each answer
is judged against the oracle's reference (``harness.compare``) into a record
dict. ``annotate_agreement`` then adds what only the whole case knows: which
backends agree with which, whether the oracle is the odd one out, the spread
between frameworks and the deltas between versions of one surface.
``unclassify`` undoes a registry classification, for ``--resume``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from harness import backward
from harness.backends import backend_class, split_version
from harness.backends.base import Call, Outcome
from harness.cases import Case
from harness.compare import Judgement, Reference, agreement, framework_spread, judge, suspect_oracle
from harness.journal import case_hash
from harness.worker import Crash, Timeout, Worker


def make_record(case: Case, backend: str, judgement: Judgement, outcome: Optional[Outcome],
            gradient: Optional[str] = None, expected_shape: Optional[tuple] = None, **extra) -> dict:
    out = outcome or Outcome(status="none")
    error = None
    if out.status == "error":
        error = {"type": out.error_type, "message": out.error_message}
    expected_shape = expected_shape if gradient else case.expected_shape
    return {
        "case": case.id, "file": case.file, "line": case.line, "op": case.op,
        "params": case.canonical_params(), "dtype": case.dtype, "data": case.common.data.model_dump(),
        "backend": backend, "gradient": gradient, **extra,
        "verdict": judgement.verdict, "reason": judgement.reason,
        "expected_shape": list(expected_shape) if expected_shape else None,
        "actual_shape": list(out.output.shape) if out.output is not None else None,
        "metrics": judgement.metrics, "tolerance": judgement.tolerance, "error": error,
        "native_call": out.native_call or None, "emulated": out.emulated, "notes": out.notes,
        "duration_ms": None if out.duration_ms is None else round(out.duration_ms, 3),
        "source": case.common.source, "description": case.common.description,
        "case_hash": case_hash(case),
    }


def accumulation_of(backend_id: str, dtype: str, outcome: Optional[Outcome] = None,
                  gradient: Optional[str] = None) -> str:
    return backend_class(backend_id).accumulation_for(dtype, outcome, gradient)


def run_one(worker: Worker, call: Call, reference: Reference, case: Case,
             timeout_s: float) -> tuple[dict, Optional[Outcome]]:
    """The forward result of one backend."""
    answer = worker.call(call, timeout_s)
    if isinstance(answer, Crash):
        return make_record(case, worker.backend_id, Judgement("crash", reason=answer.reason), None), None
    if isinstance(answer, Timeout):
        return make_record(case, worker.backend_id,
                       Judgement("timeout", reason=f"no answer within {timeout_s:g} s; worker killed"), None), None
    judgement = judge(answer, reference, expects_error=case.expects_error, dtype=case.dtype,
                      tolerance_override=tolerance_override(case),
                      accumulation=accumulation_of(worker.backend_id, case.dtype, answer))
    return make_record(case, worker.backend_id, judgement, answer), answer


def run_backward(worker: Worker, forward: tuple[Call, Reference], first: Optional[tuple[dict, Optional[Outcome]]],
                  call: Call, references: dict[str, Reference], case: Case,
                  timeout_s: float) -> list[tuple[str, dict, Optional[Outcome]]]:
    """The gradient results of one backend: ``(gradient, record, the gradient's outcome)`` each. ``first``: its
    forward result when the run has one (a failed forward is repeated, no backward call is made)."""
    gap = backend_class(worker.backend_id).gradient_gap
    if gap:   # no autodiff at all: no call, and never a repeated forward failure
        judged = [(name, Judgement("unsupported", reason=gap), None, {}) for name in references]
    elif first is not None and first[0]["verdict"] in backward.FORWARD_FAILURES:
        judged = backward.repeat_forward(first[0], references)
    else:
        answer = worker.call(call, timeout_s)
        forward_failed = False
        if backward.answered_in_forward(answer):
            probe = first or run_one(worker, *forward, case, timeout_s)
            forward_failed = probe[0]["verdict"] in backward.FORWARD_FAILURES
        outcome = answer if isinstance(answer, Outcome) else None
        accumulation = {g: accumulation_of(worker.backend_id, case.dtype, outcome, g) for g in references}
        judged = backward.judgements(case, answer, references, timeout_s, forward_failed, accumulation)
    return [(name, make_record(case, worker.backend_id, judgement, outcome, name, references[name].expected_shape,
                           **extra), outcome) for name, judgement, outcome, extra in judged]


def run_backend(worker: Worker, case: Case, forward: tuple[Call, Reference], run_forward: bool,
                 backward_call: Optional[tuple[Call, dict[str, Reference]]], timeout_s: float):
    """One backend's forward call, then its backward call (one worker answers one call at a time)."""
    first = run_one(worker, *forward, case, timeout_s) if run_forward else None
    rest = run_backward(worker, forward, first, *backward_call, case, timeout_s) if backward_call else []
    return first, rest


def tolerance_override(case: Case) -> Optional[dict]:
    return case.common.tolerance.model_dump() if case.common.tolerance else None


def annotate_agreement(case: Case, reference: Reference, answered: list[tuple[dict, Optional[Outcome]]],
                        override: Optional[dict] = None) -> None:
    """Add ``agrees_with`` to each record, flag the case when the oracle is the odd one out, and add the
    case's ``spread``: the two frameworks (in-house kernels left out) furthest apart (of an output, or of
    one gradient). ``override``: the case's tolerance override (outputs only)."""
    if reference.output is None:
        return
    usable = {rec["backend"]: out for rec, out in answered
              if out is not None and out.status == "ok" and out.output is not None
              and tuple(out.output.shape) == reference.expected_shape}
    outputs = {b: out.output for b, out in usable.items()}
    gradient = {rec["backend"]: rec.get("gradient") for rec, _ in answered}
    accumulation = {b: accumulation_of(b, case.dtype, out, gradient[b]) for b, out in usable.items()}
    partners = agreement(outputs, reference, case.dtype, override, accumulation)
    suspect = suspect_oracle(partners)
    frameworks = {b: y for b, y in outputs.items() if not backend_class(b).in_house}
    spread = framework_spread(frameworks, reference, case.dtype, override, accumulation)
    deltas = version_deltas(outputs)
    for record, _ in answered:
        if record["backend"] in deltas:
            record["version_delta"] = deltas[record["backend"]]
        if record["backend"] in partners:
            record["agrees_with"] = partners[record["backend"]]
        record["suspect_oracle"] = suspect
        if spread is not None:
            record["spread"] = spread


def version_deltas(outputs: dict) -> dict[str, dict[str, float]]:
    """For surfaces run at several versions (``ID@VERSION``): each one's max |Δ| against every other version
    of the same surface, on this case's outputs (0.0: bit-identical; NaN/Inf placed alike count as equal)."""
    deltas: dict[str, dict[str, float]] = {}
    for a, ya in outputs.items():
        for b, yb in outputs.items():
            if a != b and split_version(a)[0] == split_version(b)[0]:
                x, y = np.asarray(ya, np.float64), np.asarray(yb, np.float64)
                same = (x == y) | (np.isnan(x) & np.isnan(y))
                deltas.setdefault(a, {})[b] = float(np.abs(np.where(same, 0.0, x - y)).max(initial=0.0))
    return deltas


def unclassify(record: dict) -> None:
    """Undo a registry classification (xfail/xpass, resembles) so the record can be classified again."""
    record.pop("resembles", None)
    if record.pop("divergence", None) is not None:
        if "original_verdict" in record:
            record["verdict"] = record.pop("original_verdict")
        elif record["verdict"] == "xpass":
            record["verdict"], record["reason"] = "pass", ""
