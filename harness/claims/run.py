"""Running claims: every point's sides in their workers on identical operands, judged side against side.

One worker per surface the claims name (the run's executor's ``worker_for``, as
the runner starts them), started once for all claims. Per point every side gets
the canonical operands of its own meaning (``harness.data.make_arrays``:
NCHW input, canonical weights; each operand's stream depends on the seed, its
name and its shape only, so sides that agree on the shapes get the same
values), and each adapter converts them to its framework's layout as for any
case. Outputs are compared in NCHW.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from harness import envs, ops
from harness.claims import verdicts, words
from harness.claims.judge import SideRun, compare_sides, judge_side
from harness.claims.load import ClaimSpec, Point, Side, side_call
from harness.claims.repro import write_reproducer
from harness.compare import Judgement, Reference
from harness.data import make_arrays
from harness.divergences import Registry
from harness.executors import LocalExecutor
from harness.worker import Crash, Timeout, Worker


@dataclass
class ClaimOptions:
    backends: list[str]                       # the run's selection: a claim with a side outside it is skipped
    out: Path
    timeout_s: float = 120.0
    jobs: int = 2
    registry: Registry = field(default_factory=Registry)
    memory_limit: Optional[int] = None
    repro_dir: Optional[Path] = None          # where repro/claims/<id>/ goes (the report generation)
    on_point: Optional[Callable[[dict], None]] = None
    on_note: Callable[[str], None] = lambda text: None
    executor: Any = field(default_factory=LocalExecutor)   # where the workers run (``harness.executors``)


def operands(point: Point) -> dict[str, dict[str, np.ndarray]]:
    """Each side's canonical operands (NCHW input, canonical weights, whatever the side's layout: its
    adapter converts them): the same values wherever the sides agree on an operand's shape."""
    out = {}
    for side in point.sides:
        case, op = side.case, ops.get(side.case.op)
        out[side.backend] = make_arrays(op.shapes(case.params), case.common.data.model_dump(), case.dtype,
                                        op.operands)
    return out


def reference(side: Side, arrays: dict[str, np.ndarray]) -> Reference:
    """The float64 oracle of the side's own canonical meaning."""
    case, op = side.case, ops.get(side.case.op)
    ref = Reference(output=None, magnitude=None, expected_shape=case.expected_shape)
    if case.resolved is not None:
        params = case.canonical_params()
        ref.output, ref.magnitude = op.oracle(params, arrays), op.magnitude(params, arrays)
        error = op.error_bound(case.resolved)
        ref.accumulation_length, ref.roundings = error.accumulation_length, error.roundings
    return ref


def _start(bids: list[str], options: ClaimOptions) -> tuple[dict[str, Worker], dict[str, str]]:
    workers, unavailable = {}, {}
    logs = options.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for bid in bids:
        available, reason = envs.availability(bid)
        if available:
            try:
                log = logs / ("claims-" + re.sub(r"[^A-Za-z0-9_.@-]", "_", bid).lstrip(".") + ".log")
                workers[bid] = options.executor.worker_for(bid, log, options.memory_limit, options.on_note)
            except envs.BuildError as exc:
                available, reason = False, f"its environment could not be built: {exc}"
        if not available:
            unavailable[bid] = reason
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        started = dict(zip(workers, pool.map(lambda w: w.start(), workers.values())))
    for bid, ok in started.items():
        if not ok:
            unavailable[bid] = f"worker failed to start: {workers.pop(bid).setup_error}"
    return workers, unavailable


def run_claims(claims: list[ClaimSpec], options: ClaimOptions) -> list[dict]:
    """Every claim's record (``verdicts.claim_record``); Ctrl-C propagates after the workers are stopped."""
    needed = sorted({b for spec in claims for b in spec.backends if b in options.backends})
    workers, unavailable = _start(needed, options)
    pool = ThreadPoolExecutor(max_workers=max(1, options.jobs))
    try:
        return [_run_claim(spec, workers, unavailable, pool, options) for spec in claims]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for worker in workers.values():
            worker.stop()


def _run_claim(spec: ClaimSpec, workers: dict, unavailable: dict, pool, options: ClaimOptions) -> dict:
    started = time.monotonic()
    missing = [b for b in spec.backends if b not in options.backends]
    gone = {b: unavailable[b] for b in spec.backends if b in unavailable}
    points, first_break = [], None     # first_break: (record, runs, arrays) of the first failing point
    for point in spec.points:
        if missing or gone:
            why = (f"{', '.join(missing)} not selected (--backends)" if missing
                   else "; ".join(f"{b}: {reason}" for b, reason in gone.items()))
            record = verdicts.point_record(spec, point, Judgement("skipped", reason=why), None, [])
        else:
            record, runs, arrays = _run_point(point, spec, workers, pool, options)
            if first_break is None and record["verdict"] not in verdicts.UNCHECKED | {"pass"}:
                first_break = (record, runs, arrays)
        points.append(record)
        if options.on_point:
            options.on_point(record)
    record = verdicts.claim_record(spec, points, round(time.monotonic() - started, 3))
    if options.repro_dir is not None and first_break is not None:
        record["repro"] = write_reproducer(options.repro_dir, spec, *first_break)
    return record


def _run_point(point: Point, spec: ClaimSpec, workers: dict, pool, options: ClaimOptions):
    """The point's record, each side's run and operands (the reproducer's inputs)."""
    arrays = operands(point)
    refs = {side.backend: reference(side, arrays[side.backend]) for side in point.sides}
    calls = {side.backend: side_call(side, arrays[side.backend]) for side in point.sides}
    futures = {side.backend: pool.submit(workers[side.backend].call, calls[side.backend], options.timeout_s)
               for side in point.sides}
    runs = []
    for side in point.sides:
        answer = futures[side.backend].result()
        if isinstance(answer, Crash):
            runs.append(SideRun(side, refs[side.backend], None, Judgement("crash", reason=answer.reason)))
        elif isinstance(answer, Timeout):
            runs.append(SideRun(side, refs[side.backend], None,
                                Judgement("timeout", reason=f"no answer within {options.timeout_s:g} s")))
        else:
            runs.append(SideRun(side, refs[side.backend], answer, judge_side(side, refs[side.backend], answer)))
    judgement, _ = compare_sides(runs)
    meanings = [words.meaning(side.case.resolved.as_dict() if side.case.resolved else None,
                              side.case.invalid_reason) for side in point.sides]
    record = verdicts.point_record(spec, point, judgement, runs, meanings)
    verdicts.explain_sides(record, runs, options.registry)
    return record, runs, arrays
