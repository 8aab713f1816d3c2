"""The runner: plan (case × backend), prepare data and oracle, run workers, judge.

A case's inputs and oracle output are computed once in the parent and sent to
every backend's worker, so all backends see identical operands. Cases are
prepared ahead while the workers compute, each backend takes them in order in
its own lane, and ``jobs`` calls run at once (``harness.pipeline``, Note
[Pipeline]); the memory budget bounds how many prepared cases the parent holds.
A case is compared across backends, classified and appended to
``results.jsonl`` as soon as its last backend answers; the parent keeps only
where each record is in that file (``harness.results``, Note [Results on disk])
and the results are read back sorted, so their order never depends on the schedule. A case run backward
(``mode``) makes a second call per backend, which returns one result per
gradient (``harness.backward``).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from threadpoolctl import threadpool_limits

from harness import backward, cpu, envs, ops
from harness.backends import backend_class, matches
from harness.backends.base import Call, Outcome
from harness.cases import Case
from harness.compare import GREEN, Judgement, Reference
from harness.data import make_arrays
from harness.divergences import Registry
from harness.executors import LocalExecutor
from harness.journal import ResumePlan, key_of, plan_resume, read_journal, rewrite_journal
from harness.memory import PARENT_RESIDENT
from harness.pipeline import DEFAULT_WINDOW, run_pipeline
from harness.results import ResultIndex
from harness.suite import CaseRef, materialise
from harness.timing import CallClock, parent_cpu_s, timing
from harness.records import annotate_agreement, make_record, run_backend, tolerance_override, unclassify
from harness.worker import Worker, stop_all

DEFAULT_TIMEOUT_S = 120.0


@dataclass
class RunOptions:
    backends: list[str]
    out: Path
    timeout_s: float = DEFAULT_TIMEOUT_S
    jobs: int = 2
    on_result: Optional[Callable[[dict], None]] = None
    registry: Registry = field(default_factory=Registry)
    #: Called for each result that fails the gate, with (case, call, reference, record, outcome):
    #: the place to write reproducers, which need the operands and the oracle's output.
    on_failure: Optional[Callable] = None
    resume: bool = False
    memory_limit: Optional[int] = None     # per-worker resident memory budget (bytes)
    #: Called once with the ``ResumePlan`` before anything runs (with ``resume`` only).
    on_resume: Optional[Callable[[ResumePlan], None]] = None
    #: Report registry entries that match nothing; only meaningful when no -k/--shard filtered the cases.
    check_stale: bool = True
    #: Told what takes time before the first result (building a backend's environment).
    on_note: Optional[Callable[[str], None]] = None
    #: forward | backward | both for every case; None: each case's own ``mode``.
    mode: Optional[str] = None
    #: How many prepared cases may wait for their calls (the memory budget may allow fewer).
    window: int = DEFAULT_WINDOW
    #: Where the workers run (``harness.executors``: local subprocesses, or Ray actors); entered by the caller.
    executor: Any = field(default_factory=LocalExecutor)
    #: Told which cases of a file edited since validation were not run (Note [Edited during a run] in
    #: ``harness/suite.py``); the run is then incomplete.
    on_changed: Optional[Callable[[str], None]] = None

    def results_of(self, case: Union[Case, CaseRef]) -> tuple[Optional[str], ...]:
        """The results of ``case`` per backend: None (forward) and/or the gradients (``backward.planned``)."""
        return backward.planned(case, self.mode or case.mode)


@dataclass
class RunResult:
    #: Every record, in report order: a ``harness.results.Results`` read from the journal (any sequence will do).
    results: Sequence[dict]
    environment: dict
    duration_s: float
    created: str = ""
    incomplete: bool = False
    stale: list[dict] = field(default_factory=list)
    #: Where the time went (``timing``): report.json's ``timing`` record.
    timing: dict = field(default_factory=dict)


def environment(backend_ids: list[str], setup_errors: dict[str, str], launches: dict[str, str]) -> dict:
    backends = {}
    for bid in backend_ids:
        cls = backend_class(bid)
        available, reason = envs.availability(bid)
        if bid in setup_errors:
            available, reason = False, setup_errors[bid]
        backends[bid] = {"framework": cls.framework, "version": envs.version_of(bid),
                         "available": available, "reason": reason,
                         "environment": launches.get(bid) or envs.label_of(bid)}
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu": _cpu_name(), "backends": backends}


def _cpu_name() -> str:
    return cpu.fields().get("model name") or platform.processor() or platform.machine()


def prepare(case: Case) -> tuple[Call, Reference]:
    """The canonical operands of a case and the oracle's answer for it."""
    op = ops.get(case.op)
    params = case.canonical_params()
    arrays = make_arrays(op.shapes(case.params), case.common.data.model_dump(), case.dtype, op.operands)
    reference = Reference(output=None, magnitude=None, expected_shape=case.expected_shape)
    if case.resolved is not None:
        reference.output = op.oracle(params, arrays)
        reference.magnitude = op.magnitude(params, arrays)
        error = op.error_bound(case.resolved)
        reference.accumulation_length, reference.roundings = error.accumulation_length, error.roundings
    resolved = case.resolved.as_dict() if case.resolved is not None else None
    call = Call(op=case.op, case_id=case.id, params=params, resolved=resolved, dtype=case.dtype,
                arrays=arrays, expects_error=case.expects_error)
    return call, reference


@dataclass
class _Prepared:
    """One case, ready for its backends: operands, references, and which results each backend still owes."""
    case: Case
    call: Call
    reference: Reference
    back_call: Optional[Call]
    references: dict[str, Reference]
    wants: dict[str, list[Optional[str]]]    # backend -> None (forward) and/or gradient names


@dataclass
class _Answer:
    """One backend's results for a case: judged without a call (``immediate``), or its forward and gradients."""
    immediate: list[dict] = field(default_factory=list)
    first: Optional[tuple[dict, Optional[Outcome]]] = None
    rest: list[tuple[str, dict, Optional[Outcome]]] = field(default_factory=list)


def _parent_bytes(case: Case, backends: int, gradients: int) -> int:
    """What the parent holds for a case, from its preparation until it is judged, with ``backends`` answering
    (``OpSpec.footprint``; each gradient's references and answers are about as large again)."""
    parent, _ = ops.get(case.op).footprint(case.params, case.dtype, max(backends, 1))
    return parent * (1 + gradients)


def run(cases: list[Union[Case, CaseRef]], options: RunOptions) -> RunResult:
    """Run every (case, backend) pair; stream results to ``results.jsonl``.

    ``cases``: ``Case`` objects, or the suite's index (``harness.suite``), whose cases are rebuilt one file
    at a time as the run reaches them; planning (``--resume``, which workers to start) needs the index only.

    With ``options.resume`` the journal's records of unchanged pairs are kept
    and not run again (``harness.journal`` says which). Ctrl-C (or SIGTERM
    raised as KeyboardInterrupt by the CLI) cancels the calls in flight, stops
    the workers and returns what finished, marked incomplete.
    """
    started, started_cpu = time.monotonic(), parent_cpu_s()
    versions = {bid: envs.version_of(bid) for bid in options.backends}
    journal_path = options.out / "results.jsonl"
    options.out.mkdir(parents=True, exist_ok=True)
    index = ResultIndex(journal_path, {c.id: i for i, c in enumerate(cases)}, options.backends)
    done: set[tuple[str, str, Optional[str]]] = set()   # kept by --resume: not this run's work
    needed = set(options.backends) if cases else set()   # every case has a result per backend (forward at least)
    if options.resume:
        planned = {(c.id, b, g) for c in cases for b in options.backends for g in options.results_of(c)}
        records = read_journal(journal_path)
        plan = plan_resume(records, cases, options.backends, versions, options.results_of)
        for record in plan.kept:
            unclassify(record)   # the registry may have changed since: judge it afresh
            options.registry.classify(record, versions[record["backend"]])
            done.add(key_of(record))
        # No outdated record survives; the kept ones are written classified, and indexed where they now are.
        for record, offset, length in rewrite_journal(journal_path, records, plan, planned):
            index.add(record, offset, length)
        needed = {b for c, b, _ in planned - done}
        if options.on_resume:
            options.on_resume(plan)
        del records, plan   # held again only as the journal's lines
    journal = journal_path.open("ab" if options.resume else "wb")
    written = journal.seek(0, 2)

    workers: dict[str, Worker] = {}
    setup_errors: dict[str, str] = {}      # not installed: results are `skipped`
    start_errors: dict[str, str] = {}      # installed but the worker cannot start: results are `crash`
    logs = options.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    launches: dict[str, str] = {}
    for bid in options.backends:
        available, reason = envs.availability(bid)
        if available and bid in needed:
            log = logs / (re.sub(r"[^A-Za-z0-9_.@-]", "_", bid).lstrip(".") + ".log")   # ids come from plugins too
            log.write_text("")
            try:
                workers[bid] = options.executor.worker_for(bid, log, options.memory_limit,
                                                           options.on_note or (lambda text: None))
                launches[bid] = workers[bid].launch.label
            except envs.BuildError as exc:
                # Asked for and buildable in principle (uv is there), but not built: e.g. a version the index
                # does not have. Never a silent green: its results are `crash`, like a worker that cannot start.
                start_errors[bid] = f"its environment could not be built: {exc}"
                launches[bid] = "not built"
                continue
        if not available:
            setup_errors[bid] = reason
    versions.update({bid: envs.version_of(bid) for bid in launches})   # what was built, now it exists

    def emit(record: dict) -> None:
        nonlocal written
        record["backend_version"] = versions[record["backend"]]
        options.registry.classify(record, versions[record["backend"]])
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        journal.write(line)
        journal.flush()
        index.add(record, written, len(line))   # only once the whole line is in the file
        written += len(line)
        if options.on_result:
            options.on_result(record)

    def start(bid: str) -> None:
        if bid in workers and not workers[bid].start():
            start_errors[bid] = f"worker failed to start: {workers[bid].setup_error}"

    def wanted_of(case: Case) -> set[tuple[str, Optional[str]]]:
        return {(b, g) for b in options.backends for g in options.results_of(case) if (case.id, b, g) not in done}

    def cost(case: Case) -> int:
        wanted = wanted_of(case)
        return _parent_bytes(case, len({b for b, _ in wanted}), len({g for _, g in wanted if g is not None}))

    def prepare_case(case: Case) -> Optional[_Prepared]:
        wanted = wanted_of(case)
        if not wanted:
            return None
        call, reference = prepare(case)
        wanted_gradients = {g for _, g in wanted if g is not None}   # resume may have kept some already
        grads = tuple(g for g in options.results_of(case) if g in wanted_gradients)
        back_call, references = backward.prepare(case, call, grads) if grads else (None, {})
        wants = {b: [g for g in options.results_of(case) if (b, g) in wanted]
                 for b in options.backends if any((b, g) in wanted for g in options.results_of(case))}
        return _Prepared(case, call, reference, back_call, references, wants)

    def work(bid: str, job: _Prepared, slot) -> _Answer:
        case, mine = job.case, job.wants[bid]
        verdict = None
        if case.common.backends and not matches(bid, case.common.backends):
            verdict = Judgement("skipped", reason="not in the case's backends list")
        elif bid in setup_errors:
            verdict = Judgement("skipped", reason=setup_errors[bid])
        elif bid in start_errors:   # installed but broken: never a silent green
            verdict = Judgement("crash", reason=start_errors[bid])
        if verdict is not None:
            return _Answer(immediate=[make_record(case, bid, verdict, None, g,
                                              job.references[g].expected_shape if g else None) for g in mine])
        gs = [g for g in mine if g is not None]
        backward_call = (dataclasses.replace(job.back_call, gradients=tuple(gs)),
                         {g: job.references[g] for g in gs}) if gs else None
        with slot():
            first, rest = run_backend(workers[bid], case, (job.call, job.reference), None in mine,
                                       backward_call, options.timeout_s)
        calls = {id(o): o for o in [first[1] if first else None, *(o for _, _, o in rest)] if o is not None}
        clock[bid].add(calls.values())
        return _Answer(first=first, rest=rest)

    def finish(job: _Prepared, answers: dict[str, _Answer]) -> None:
        case = job.case
        ordered = [answers[b] for b in options.backends if b in answers]
        for answer in ordered:
            for record in answer.immediate:
                emit(record)
        answered = [a.first for a in ordered if a.first is not None]
        gradient_answers = [item for a in ordered for item in a.rest]
        annotate_agreement(case, job.reference, answered, tolerance_override(case))
        for g in job.references:
            annotate_agreement(case, job.references[g], [(r, o) for name, r, o in gradient_answers if name == g])
        for record, outcome in answered:
            if options.on_failure and record["verdict"] not in GREEN:
                options.on_failure(case, job.call, job.reference, record, outcome)
            emit(record)
        for name, record, outcome in gradient_answers:
            if options.on_failure and record["verdict"] not in GREEN:
                options.on_failure(case, job.back_call, job.references[name], record, outcome)
            emit(record)

    def cancel() -> None:
        for worker in workers.values():
            worker.cancel()

    changed: list[str] = []

    def on_changed(message: str) -> None:
        changed.append(message)
        if options.on_changed:
            options.on_changed(message)

    clock = {bid: CallClock() for bid in options.backends}   # each lane adds to its own
    interrupted = False
    budget = options.memory_limit - PARENT_RESIDENT if options.memory_limit else None
    try:
        # The parent's oracle shares the cores with the workers: OpenBLAS's own threads would spin against
        # them (a 2-thread product measured 3-40x slower than one thread under that load).
        with threadpool_limits(1, user_api="blas"):
            # The index's cases are rebuilt a file at a time, in the producer thread (Note [Case index]).
            run_pipeline(materialise(cases, on_changed), prepare=prepare_case, lanes_of=lambda job: list(job.wants),
                         work=work, finish=finish, lanes=[b for b in options.backends if b in needed], start=start,
                         cancel=cancel, slots=options.jobs, window=options.window, budget=budget, cost=cost)
    except KeyboardInterrupt:
        # The calls in flight are cancelled, not judged: they are not results.
        interrupted = True
    finally:
        try:
            stop_all(workers.values(), kill=interrupted)
        finally:
            journal.close()
    results = index.results()
    incomplete = interrupted or bool(changed)
    stale = options.registry.stale(options.backends) if options.check_stale and not incomplete else []
    duration = time.monotonic() - started
    described = environment(options.backends, {**setup_errors, **start_errors}, launches)
    return RunResult(results=results, environment={**described, "executor": options.executor.describe()},
                     duration_s=round(duration, 3), incomplete=incomplete, stale=stale,
                     timing=timing(clock, duration, options.jobs, len(results) - len(done),
                                   parent_cpu_s() - started_cpu))
