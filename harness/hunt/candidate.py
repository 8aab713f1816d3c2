"""One failure being hunted down: shrunk to a minimal call, then probed until its conditions settle.

A ``Candidate`` is a small state machine the engine advances once per round:

* ``shrink``: it proposes every one-field simplification of its current call
  (``space.shrink_moves``) plus, after a round where several moves kept the
  failure, all of them at once (``space.combine``); the smallest variant
  that keeps the failure (same backend, same verdict, same ``failure_kind``)
  becomes the current call. At most ``MAX_MOVES`` variants a round, the
  smallest first; when none of a round keeps it, the next round tries the
  rest, and when none is left the call is minimal for these moves.
* ``probe``: it asks for the minimal call on every backend (the evidence) and
  for probes of its conditions: a random mutation of each field of the
  minimal call, and calls from the exploration stream that meet every
  condition but one (is that one needed?) or all of them (is every such call
  divergent?). Each probe that fails the same way is one more positive, each
  that passes one more neighbour; the conditions are separated again
  (``explain.separate``), and once they stop changing (or after
  ``max_probe_rounds`` rounds; with 0 none, and no evidence from the other
  backends either) the candidate is done.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

from harness.hunt import explain, space

MAX_MOVES = 16           # variants per round (smallest first; the rest the next round if none kept it)
PROBE_NECESSITY = 2      # stream calls per condition that meet every other condition but not it
PROBE_SATISFYING = 6     # stream calls that meet every condition
PROBE_SCAN = 4000        # stream calls looked at for them, at most
#: How many of the backend's other observations (exploration) the separation looks at, at most.
MAX_BACKGROUND = 800
MAX_WIDENING = 6         # probes per round that fail this way outside the conditions, tried as widenings


@dataclass
class Candidate:
    number: int
    op: str
    backend: str
    verdict: str
    kind: str
    origin: dict                       # the call it was found on
    origin_case: str
    started_round: int
    current: dict = field(default=None)
    record: dict = field(default=None)             # the backend's result on ``current``
    chain: list = field(default_factory=list)      # every call that kept the failure (origin first)
    passing: list = field(default_factory=list)    # neighbours that pass on the backend
    other: list = field(default_factory=list)      # neighbours that fail there differently
    phase: str = "shrink"
    steps: int = 0
    probe_rounds: int = 0
    combo_base: Optional[dict] = None
    successes: list = field(default_factory=list)
    picked: list = field(default_factory=list)
    unseparated: int = 0
    evidence: dict = field(default_factory=dict)   # backend -> result on the minimal call (every backend)
    max_probe_rounds: int = 2
    tried: set = field(default_factory=set)        # moves of the current call already run

    def __post_init__(self):
        self.current = self.current or self.origin
        self.chain = self.chain or [self.origin]

    @property
    def label(self) -> str:
        return f"{self.backend} {self.verdict}" + (f" ({self.kind})" if self.kind else "")

    def same(self, record: dict) -> bool:
        return record["verdict"] == self.verdict and explain.failure_kind(record, self.op) == self.kind

    # ------------------------------------------------------------ what to run this round

    def proposals(self, seed: int, stream) -> list[tuple[str, dict, bool]]:
        """``(tag, fields, every_backend)`` to run this round: variants (on this backend) or probes."""
        if self.phase == "shrink":
            moves = [m for m in space.shrink_moves(self.op, self.current) if space.key(m) not in self.tried]
            moves = moves[:MAX_MOVES]
            combo = space.combine(self.op, self.combo_base, self.successes) if len(self.successes) > 1 else None
            if combo is not None and space.key(combo) not in {space.key(m) for m in moves} | self.tried:
                moves.insert(0, combo)
            self.tried |= {space.key(m) for m in moves}
            return [("move", m, False) for m in moves]
        rng = random.Random(f"probe:{seed}:{self.number}:{self.probe_rounds}")
        out = [] if self.evidence else [("minimal", self.current, True)]
        seen = {space.key(self.current)}

        def add(call: dict) -> None:
            if space.key(call) not in seen:
                seen.add(space.key(call))
                out.append(("probe", call, False))
        for mutant in space.mutate_each(self.op, self.current, rng):
            add(mutant)
        for call in self._stream_probes(stream):
            add(call)
        return out

    def _stream_probes(self, stream) -> list[dict]:
        """Calls from the exploration stream that test the conditions: per condition, ones that meet every
        other condition but not this one (does the divergence need it?), and ones that meet all (does every
        call that meets them diverge?)."""
        atoms, found = self.picked, []
        wanted = [PROBE_NECESSITY] * len(atoms) + [PROBE_SATISFYING]
        for j in range(PROBE_SCAN):
            if not any(wanted):
                break
            call = stream(10**9 + self.number * 10**6 + self.probe_rounds * 10**4 + j)
            values = explain.values_of(self.op, call)
            holds = [a.holds(values) for a in atoms]
            failed = [i for i, h in enumerate(holds) if not h]
            slot = len(atoms) if not failed else failed[0] if len(failed) == 1 else None
            if slot is not None and wanted[slot]:
                wanted[slot] -= 1
                found.append(call)
        return found

    # ------------------------------------------------------------ what came back

    def absorb(self, ran: list[tuple[str, dict, dict]], background: list[tuple[dict, dict]]) -> None:
        """Take this round's results: ``(tag, fields, {backend: record})`` per proposal; ``background``:
        the backend's other observations ``(fields, record)`` (exploration), for the separation."""
        mine = [(tag, f, records[self.backend]) for tag, f, records in ran if self.backend in records]
        for tag, f, records in ran:
            if tag == "minimal":
                self.evidence = records
        if self.phase == "shrink":
            kept = [(f, r) for tag, f, r in mine if tag == "move" and self.same(r)]
            for tag, f, r in mine:
                if not self.same(r):
                    self._neighbour(f, r)
            if kept:
                self.tried = set()
                base = self.current
                best, self.record = min(kept, key=lambda fr: (space.cost(self.op, fr[0]), space.key(fr[0])))
                self.combo_base, self.successes = base, [f for f, _ in kept]
                self.current, self.steps = best, self.steps + 1
                self.chain.append(best)
                return
            self.successes = []
            if any(space.key(m) not in self.tried for m in space.shrink_moves(self.op, self.current)):
                return   # more moves than one round takes: the rest next round
            self.phase = "probe" if self.max_probe_rounds else "done"
            self._separate(background)
            return
        failing = []
        for tag, f, r in mine:
            if tag == "probe":
                if self.same(r):
                    failing.append(f)
                else:
                    self._neighbour(f, r)
        before = explain.when_of(self.picked)
        trials = 0
        for f in failing:
            # A probe that fails this way and meets the conditions joins the chain. One that does not widens
            # them only if they still exclude every passing call with it: else it is another facet (another
            # group, found on its own), or the same failure through another rule.
            if all(a.holds(explain.values_of(self.op, f)) for a in self.picked):
                self.chain.append(f)
            elif trials < MAX_WIDENING:
                trials += 1
                if self._separate(background, self.chain + [f], commit=False)[1] <= self.unseparated:
                    self.chain.append(f)
        self._separate(background)
        self.probe_rounds += 1
        if explain.when_of(self.picked) == before or self.probe_rounds >= self.max_probe_rounds:
            self.phase = "done"

    def _neighbour(self, fields: dict, record: dict) -> None:
        """A call that does not fail this way: passing, or failing with another verdict (the same verdict of
        another kind may be the same divergence seen differently: neither side)."""
        if record["verdict"] == "pass":
            self.passing.append(fields)
        elif record["verdict"] not in ("unsupported", "skipped", self.verdict):
            self.other.append(fields)

    def _separate(self, background: list[tuple[dict, dict]], chain: Optional[list] = None, commit: bool = True):
        """The conditions separating ``chain`` (default: the candidate's) from the neighbours and a sample of
        the backend's exploration results; kept as the candidate's with ``commit``."""
        values = lambda calls: [explain.values_of(self.op, f) for f in calls]  # noqa: E731
        step = max(1, len(background) // MAX_BACKGROUND)
        sample = background[::step]
        passing = self.passing + [f for f, r in sample if r["verdict"] == "pass"]
        other = self.other + [f for f, r in sample if r["verdict"] not in ("pass", "unsupported", "skipped")
                              and r["verdict"] != self.verdict]
        found = explain.separate(self.op, values(chain or self.chain), values(passing), values(other))
        if commit:
            self.picked, self.unseparated = found
        return found

    # ------------------------------------------------------------ the result

    def signature(self) -> str:
        return explain.signature(self.backend, self.verdict, self.picked)

    def proposed_entry(self, sig: Optional[str] = None) -> dict:
        sig = sig or self.signature()
        reason = (f"Found by conform hunt: {self.backend} gives {self.verdict} where "
                  f"{explain.in_words(self.picked)}. Draft: say the cause and cite the source.")
        return explain.entry(self.op, self.backend, self.verdict, self.picked, sig, reason)
