"""The hunt's loop: rounds of calls through ``runner.run``, candidates shrunk and probed, groups formed.

Each round is one ``run()`` call (one set of workers, started once for the
round): the variants and probes every candidate asks for (each restricted to
its backend with the case's ``backends:``, so other workers never run it),
then fresh calls from the exploration stream on every backend. What goes into
a round depends only on what came back before, so a hunt is deterministic for
a seed and framework versions; the journal (``harness.hunt.journal``) replays
rounds on ``--resume``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from harness import envs
from harness.cases import build_case
from harness.compare import GREEN
from harness.divergences import FAILING, Registry
from harness.hunt import explain, space
from harness.hunt.candidate import Candidate
from harness.hunt.journal import Journal
from harness.runner import RunOptions, run

#: Exploration calls per round: many while nothing is being shrunk (worker start-up, ~15 s for six
#: surfaces, is paid per round), few while candidates wait for their variants.
EXPLORE_IDLE, EXPLORE_BUSY = 160, 40
MAX_ACTIVE = 9          # candidates shrunk at once
MAX_QUEUED = 8          # failures waiting per (backend, verdict, kind), smallest first
KEEP = ("case", "backend", "verdict", "reason", "expected_shape", "actual_shape", "metrics", "error",
        "native_call", "emulated", "backend_version", "duration_ms")


@dataclass
class HuntOptions:
    op: str
    backends: list[str]
    out: Path
    seed: int = 0
    budget_s: Optional[float] = None
    budget_cases: Optional[int] = None
    jobs: int = 2
    timeout_s: float = 60.0
    registry: Registry = field(default_factory=Registry)
    resume: bool = False
    memory_limit: Optional[int] = None
    settings: dict = field(default_factory=dict)       # what the journal header records (registry, budget)
    #: Calls posed on every backend in the first round (their failures are hunted like exploration's);
    #: ``explore=False`` hunts only those (a test shrinking a known divergence, a person's own call).
    seeds: list = field(default_factory=list)
    explore: bool = True
    probe_rounds: int = 2
    on_event: Callable[[str, dict], None] = lambda kind, info: None


@dataclass
class Group:
    signature: str
    candidate: Candidate
    entry: dict
    found_s: float
    found_round: int
    cases_before: int
    instances: int = 0          # later candidates whose minimal call this group's entry explains
    selector: object = field(init=False)   # the entry compiled, as the registry compiles one

    def __post_init__(self):
        self.selector = explain.selector(self.entry)


@dataclass
class Hunt:
    options: HuntOptions
    versions: dict = field(default_factory=dict)
    rounds: int = 0
    cases_run: int = 0
    results: int = 0
    elapsed_s: float = 0.0
    next_explore: int = 0
    groups: list = field(default_factory=list)
    active: list = field(default_factory=list)
    queued: dict = field(default_factory=dict)         # (backend, verdict, kind) -> [(cost, fields, case id)]
    explained: dict = field(default_factory=dict)      # registry entry id -> results it explained
    observed: dict = field(default_factory=dict)       # backend -> [(fields, record)] of exploration
    interrupted: bool = False
    candidates: int = 0
    failures: dict = field(default_factory=dict)       # (backend, verdict, kind) -> unexplained failures seen

    # ------------------------------------------------------------------ the loop

    def run(self) -> "Hunt":
        o = self.options
        self.versions = {b: envs.version_of(b) for b in o.backends}
        journal = Journal(o.out / "hunt-journal.jsonl", {"op": o.op, "seed": o.seed, "backends": o.backends,
                                                          "versions": self.versions, **o.settings}, o.resume)
        try:
            while not self._spent():
                planned = self._plan()
                if not planned:
                    break
                replay = journal.replay(self.rounds, planned)
                started = time.monotonic()
                if replay is None:
                    o.on_event("round", {"round": self.rounds, "cases": len(planned), "hunt": self})
                    records, incomplete = self._execute(planned)
                    if incomplete:
                        self.interrupted = True
                        break
                    duration = time.monotonic() - started
                    journal.append(self.rounds, planned, records, duration)
                else:
                    records, duration = replay
                self.elapsed_s += duration
                self._absorb(planned, records)
                self.rounds += 1
        finally:
            journal.close()
        return self

    def _spent(self) -> bool:
        o = self.options
        if o.budget_cases is not None and self.cases_run >= o.budget_cases:
            return True
        return o.budget_s is not None and self.elapsed_s >= o.budget_s

    def _plan(self) -> list[tuple[str, dict, Optional[str], object]]:
        """This round's calls: ``(case id, fields, backend or None for every backend, owner)``."""
        o = self.options
        planned = []
        for cand in self.active:
            for j, (tag, fields, everywhere) in enumerate(cand.proposals(o.seed, self._stream)):
                planned.append((f"h{o.seed}-c{cand.number}-r{self.rounds}-{j}", fields,
                                None if everywhere else cand.backend, (cand, tag)))
        explore = (EXPLORE_BUSY if self.active else EXPLORE_IDLE) if o.explore else 0
        if self.rounds == 0:
            seeds = [(i, space.settle(o.op, fields)) for i, fields in enumerate(o.seeds)]
            planned += [(f"h{o.seed}-s-{i}", fields, None, None) for i, fields in seeds if fields is not None]
            planned += self._error_inputs() if o.explore else []
        for _ in range(explore):
            planned.append((f"h{o.seed}-{self.next_explore}", self._stream(self.next_explore), None, None))
            self.next_explore += 1
        if o.budget_cases is not None:
            planned = planned[:max(0, o.budget_cases - self.cases_run)]
        return planned

    def _stream(self, index: int) -> dict:
        return space.explore(self.options.op, self.options.seed, index)

    def _error_inputs(self) -> list:
        """The operator's own error inputs (``OpSpec.error_inputs``), posed once in the first round."""
        from harness import ops
        out = []
        for item in ops.get(self.options.op).error_inputs:
            fields = space.settle(self.options.op, dict(item.fields))
            if fields is not None:
                out.append((f"h{self.options.seed}-e-{item.id}", fields, None, None))
        return out

    def _execute(self, planned) -> tuple[list[dict], bool]:
        o = self.options
        cases = []
        for case_id, fields, backend, _ in planned:
            raw = {"id": case_id, **fields}
            if backend is not None:
                raw["backends"] = [backend]
            cases.append(build_case(raw, o.op, file="<hunt>"))
        kept: list[dict] = []

        def on_result(record: dict) -> None:
            kept.append({k: record.get(k) for k in KEEP})
            o.on_event("result", {"record": record, "hunt": self})

        result = run(cases, RunOptions(backends=o.backends, out=o.out / "hunt-work", timeout_s=o.timeout_s,
                                       jobs=o.jobs, on_result=on_result, registry=Registry(),
                                       memory_limit=o.memory_limit, check_stale=False))
        return kept, result.incomplete

    # ------------------------------------------------------------------ what came back

    def _absorb(self, planned, records: list[dict]) -> None:
        by_case: dict[str, dict[str, dict]] = {}
        for record in records:
            if record["verdict"] != "skipped":
                by_case.setdefault(record["case"], {})[record["backend"]] = record
        self.cases_run += len(planned)
        self.results += sum(len(v) for v in by_case.values())
        owned: dict[int, list] = {}
        for case_id, fields, _, owner in planned:
            answers = {b: {**r, "params": fields} for b, r in by_case.get(case_id, {}).items()}
            if owner is not None:
                # A variant a known divergence explains is no step of this shrink (it would walk the minimal
                # case into known territory, e.g. F4's zero-depth filters): neither passing nor the same failure.
                answers = {b: ({**r, "verdict": "xfail"} if r["verdict"] in FAILING
                               and self._explained(fields, r) else r) for b, r in answers.items()}
                owned.setdefault(owner[0].number, []).append((owner[1], fields, answers))
                continue
            for backend, record in answers.items():
                self.observed.setdefault(backend, []).append((fields, record))
                self._consider(case_id, fields, record)
        for cand in list(self.active):
            cand.absorb(owned.get(cand.number, []), self.observed.get(cand.backend, []))
            if cand.phase == "done":
                self.active.remove(cand)
                self._settle(cand)
        for cand in list(self.active):   # a group formed since it started may explain it already
            group = next((g for g in self.groups if cand.verdict in g.entry["verdict"]
                          and self._explaining(cand.current, cand.record, [g.selector])), None)
            if group is not None:
                self.active.remove(cand)
                group.instances += 1
        self._start_queued()

    def _explaining(self, fields: dict, record: dict, selectors) -> Optional[object]:
        """The first of ``selectors`` that selects this result (as the registry matches: backend, version,
        conditions), or None."""
        probe = {"op": self.options.op, "case": record["case"], "backend": record["backend"], "gradient": None,
                 "verdict": record["verdict"], "dtype": fields["dtype"], "data": fields["data"],
                 "params": {n: v for n, v in fields.items() if n not in ("dtype", "data", "expect")}}
        version, values = self.versions.get(record["backend"]), explain.values_of(self.options.op, fields)
        return next((sel for sel in selectors if sel.applies(probe, version) and not sel.failing(probe, values)), None)

    def _explained(self, fields: dict, record: dict) -> Optional[str]:
        """The registry entry or group that explains a failing result with its verdict, if any."""
        sel = self._explaining(fields, record, self.options.registry.selectors + [g.selector for g in self.groups])
        return sel.entry.id if sel is not None and record["verdict"] in sel.entry.verdicts() else None

    def _consider(self, case_id: str, fields: dict, record: dict) -> None:
        if record["verdict"] in GREEN or record["verdict"] not in FAILING:
            return
        explained = self._explained(fields, record)
        if explained:
            self.explained[explained] = self.explained.get(explained, 0) + 1
            return
        label = (record["backend"], record["verdict"], explain.failure_kind(record, self.options.op))
        self.failures[label] = self.failures.get(label, 0) + 1
        waiting = self.queued.setdefault(label, [])
        waiting.append((space.cost(self.options.op, fields), space.key(fields), fields, case_id, record))
        waiting.sort(key=lambda w: (w[0], w[1]))
        del waiting[MAX_QUEUED:]

    def _start_queued(self) -> None:
        """Start waiting failures, one per (backend, verdict, kind), backends with the fewest candidates first
        (a backend with many slow shrinks must not keep another backend's failures waiting), then the kinds
        seen failing most often."""
        busy = {(c.backend, c.verdict, c.kind) for c in self.active}
        while len(self.active) < MAX_ACTIVE:
            load = {b: sum(c.backend == b for c in self.active) for b in self.options.backends}
            waiting = sorted((load.get(label[0], 0), -self.failures.get(label, 0), label)
                             for label, queue in self.queued.items() if queue and label not in busy)
            if not waiting:
                return
            label = waiting[0][2]
            busy.add(label)
            while self.queued[label]:
                _, _, fields, case_id, record = self.queued[label].pop(0)
                if self._explained(fields, record):   # a group found since it was queued explains it
                    continue
                self.candidates += 1
                cand = Candidate(self.candidates, self.options.op, *label, origin=fields, origin_case=case_id,
                                 started_round=self.rounds, record=record,
                                 max_probe_rounds=self.options.probe_rounds)
                self.active.append(cand)
                self.options.on_event("candidate", {"candidate": cand, "hunt": self})
                break

    def _settle(self, cand: Candidate) -> None:
        """A finished candidate becomes a group, unless an existing group already explains its minimal call."""
        for group in self.groups:
            if self._explaining(cand.current, cand.record, [group.selector]) and cand.verdict in group.entry["verdict"]:
                group.instances += 1
                return
        sig = cand.signature()
        group = Group(sig, cand, cand.proposed_entry(sig), round(self.elapsed_s, 1), self.rounds, self.cases_run)
        self.groups.append(group)
        self.options.on_event("group", {"group": group, "hunt": self})
