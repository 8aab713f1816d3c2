"""The judged results behind the pytest plugin's items, one pytest process at a time (``harness.pytest_plugin``).

Each pytest process (the only one, or each pytest-xdist worker) owns one ``ProcessRunner``: one framework
worker per backend (``harness.worker``), started when its first item runs and stopped at session end, and
the prepared call of the case being run (``runner.prepare``, ``backward.prepare``), shared by all of its
items. A backend's results for a case (its forward result and its gradients) come from one
``records.run_backend`` call, exactly as ``conform run`` makes it, and are classified by the same registry
call; what differs is only the schedule: pytest runs items one after another, so the backends of a case
run in turn rather than side by side (``-n`` brings the parallelism), and the cross-backend annotations of
report.json (``agrees_with``, ``spread``, ``suspect_oracle``) are not computed: they never change a verdict.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Callable, Optional

from harness import backward, envs
from harness.backends import matches
from harness.cases import Case
from harness.compare import GREEN, Judgement
from harness.divergences import Registry
from harness.report.repro import ReproWriter
from harness.records import make_record, run_backend
from harness.runner import DEFAULT_TIMEOUT_S, prepare
from harness.worker import Worker, stop_all, worker_for


@dataclasses.dataclass
class _Judged:
    """One result with what its reproducer needs (written only when its item reports it)."""
    record: dict
    call: object
    reference: object
    outcome: object


class ProcessRunner:
    """Results per (case, backend, gradient) for this process; ``close`` stops the workers."""

    def __init__(self, backends: list[str], registry: Registry, repro_out: Path, logs: Path,
                 mode: Optional[str] = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 memory_limit: Optional[int] = None, note: Callable[[str], None] = lambda text: None):
        self.backends, self.registry, self.mode = backends, registry, mode
        self.repro = ReproWriter(repro_out)
        self.logs, self.timeout_s, self.memory_limit, self.note = logs, timeout_s, memory_limit, note
        self.workers: dict[str, Worker] = {}
        self.setup_errors: dict[str, str] = {}     # not installed: results are `skipped`
        self.start_errors: dict[str, str] = {}     # installed but the worker cannot start: results are `crash`
        self.versions: dict[str, Optional[str]] = {}
        self._case: Optional[str] = None           # the case whose preparation and results are held
        self._prepared: Optional[tuple] = None
        self._judged: dict[tuple[str, Optional[str]], _Judged] = {}

    def results_of(self, case: Case) -> tuple[Optional[str], ...]:
        """None (the forward result) and/or gradient operands, as ``RunOptions.results_of``."""
        return backward.planned(case, self.mode or case.common.mode)

    def result(self, case: Case, backend: str, gradient: Optional[str]) -> dict:
        """The classified record of one result (its reproducer written when it fails the gate): JSON values only."""
        if self._case != case.id:   # one case held at a time: memory stays that of `conform run`
            self._case, self._prepared, self._judged = case.id, None, {}
        if (backend, gradient) not in self._judged:
            self._judge(case, backend)
        judged = self._judged[(backend, gradient)]
        record = judged.record
        if record["verdict"] not in GREEN and "repro" not in record:
            self.repro(case, judged.call, judged.reference, record, judged.outcome)   # as conform run: before classify
        if "backend_version" not in record:
            record["backend_version"] = self.versions.get(backend)
            self.registry.classify(record, self.versions.get(backend))
        return json.loads(json.dumps(record))   # numpy scalars -> plain values (xdist sends records to the controller)

    def _prepare(self, case: Case):
        if self._prepared is None:
            call, reference = prepare(case)
            grads = tuple(g for g in self.results_of(case) if g is not None)
            back_call, references = backward.prepare(case, call, grads) if grads else (None, {})
            self._prepared = (call, reference, back_call, references)
        return self._prepared

    def _judge(self, case: Case, backend: str) -> None:
        """Every result of ``backend`` for ``case``: one forward and one backward call, as ``runner.run``."""
        call, reference, back_call, references = self._prepare(case)
        mine = self.results_of(case)
        verdict = None
        if case.common.backends and not matches(backend, case.common.backends):
            verdict = Judgement("skipped", reason="not in the case's backends list")
        else:
            worker = self._worker(backend)
            if backend in self.setup_errors:
                verdict = Judgement("skipped", reason=self.setup_errors[backend])
            elif backend in self.start_errors:   # installed but broken: never a silent green
                verdict = Judgement("crash", reason=self.start_errors[backend])
        if verdict is not None:
            for g in mine:
                record = make_record(case, backend, verdict, None, g, references[g].expected_shape if g else None)
                self._judged[(backend, g)] = _Judged(record, call, reference, None)
            return
        grads = tuple(g for g in mine if g is not None)
        first, rest = run_backend(worker, case, (call, reference), None in mine,
                                  (dataclasses.replace(back_call, gradients=grads), references) if grads else None,
                                  self.timeout_s)
        if first is not None:
            self._judged[(backend, None)] = _Judged(first[0], call, reference, first[1])
        for name, record, outcome in rest:
            self._judged[(backend, name)] = _Judged(record, back_call, references[name], outcome)

    def _worker(self, backend: str) -> Optional[Worker]:
        """The backend's worker, started on first use (a backend that cannot run is remembered with why)."""
        if backend in self.workers or backend in self.setup_errors or backend in self.start_errors:
            return self.workers.get(backend)
        available, reason = envs.availability(backend)
        if not available:
            self.setup_errors[backend] = reason
            self.versions[backend] = envs.version_of(backend)
            return None
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / (re.sub(r"[^A-Za-z0-9_.@-]", "_", backend).lstrip(".") + ".log")
        log.write_text("")
        try:
            worker = worker_for(backend, log, self.memory_limit, self.note)
        except envs.BuildError as exc:
            self.start_errors[backend] = f"its environment could not be built: {exc}"
        else:
            self.workers[backend] = worker
            if not worker.start():
                self.start_errors[backend] = f"worker failed to start: {worker.setup_error}"
        self.versions[backend] = envs.version_of(backend)   # what was built, now it exists
        return self.workers.get(backend)

    def close(self, interrupted: bool = False) -> None:
        try:
            stop_all(self.workers.values(), kill=interrupted)
        finally:
            self.workers.clear()
