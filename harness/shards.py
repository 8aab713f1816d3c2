"""``--shard K/N``: splitting a suite into N shards of similar cost, and the suite record merge relies on.

Note [Shard cost]
-----------------
A shard should take about as long as every other, so a CI matrix finishes when
its slowest job does, not much later. Round-robin by count does not do that: a
suite's cases differ in cost by orders of magnitude (a 1×1 pooling window next
to a 64-channel dilated convolution), and so do backends (a Keras layer is
built per call, JAX compiles eagerly). Each case gets an *estimated* cost in
seconds::

    cost(case) = passes · Σ_backends (overhead_b + flops / rate_b)  +  oracle

* ``flops``: one call's floating-point operations as the operator counts them
  (``OpSpec.flops``; 0 for a call the semantics rejects, which costs its
  overheads only);
* ``overhead_b``: a fixed cost per call of backend ``b`` (IPC, operand
  conversion, a layer or model built per call; ``OVERHEAD_S``, by framework,
  measured on the default suite: the median wall time of a small call);
  ``rate_b``: the arithmetic rate its calls reach (``RATE``);
* ``passes``: 1 forward, 2 backward (a vector–Jacobian product costs about
  twice the forward), 3 both;
* ``oracle``: the parent's float64 oracle and magnitude (two direct
  convolutions at ``ORACLE_RATE``), twice as much again for the gradient
  oracle when the case runs backward.

A backend the case restricts away costs nothing (its result is ``skipped``).
A claim costs the sum of its points' sides, each side estimated as a case on
its one backend. The estimate only has to rank the work well; it is not a
prediction of wall time on any one machine.

The split is longest-processing-time first: items in decreasing cost (ties by
id) each go to the shard with the least cost so far (ties by shard number).
It depends on nothing but the suite, the backends and the mode, so every job
of a matrix computes the same partition, every item lands in exactly one
shard, and a shard runs its items in the suite's own order. ``-k`` selects
before the split (a shard is a slice of the selected cases).

The suite record (``suite`` in report.json) is what ``conform merge`` checks
shards against each other with: a fingerprint of the selected suite before
splitting (case ids, ``case_hash`` and mode, claim ids and content), the
registry file's sha256, the shard ``[K, N]``, the position of each of its
cases and claims in the whole suite (``case_positions``, ``claim_positions``:
merged results come out in the order of one run) and the
registry entries this shard matched nothing with (``unmatched``: merge
reports an entry stale only when it matched nothing in any shard).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from pathlib import Path
from typing import Optional, Sequence

from harness.backends import matches, split_version
from harness.journal import case_hash

#: Fixed seconds per call by framework (the part of a backend id before the first dot, without ``@VERSION``):
#: the median ``duration_ms`` of the default suite's (small) calls on a 2-core machine, plus ~2 ms of IPC.
#: JAX compiles every new shape eagerly; MindSpore builds a graph cell per call.
OVERHEAD_S = {"numpy": 0.002, "numba": 0.016, "torch": 0.01, "tf": 0.008, "mindspore": 0.021,
              "jax": 0.18, "onnxruntime": 0.002}
#: Surfaces that build a layer per call cost more than their framework's functions.
SURFACE_OVERHEAD_S = {"tf.keras": 0.012}
DEFAULT_OVERHEAD_S = 0.01
#: Floating-point operations per second a backend's calls reach (in-house float64 ``numpy`` is the slowest).
RATE = {"numpy": 0.5e9, "numba": 5e9}
DEFAULT_RATE = 10e9
ORACLE_RATE = 0.5e9
PASSES = {"forward": 1, "backward": 2, "both": 3}


def _overhead(backend: str) -> float:
    surface = split_version(backend)[0]
    return SURFACE_OVERHEAD_S.get(surface, OVERHEAD_S.get(surface.split(".")[0], DEFAULT_OVERHEAD_S))


def case_cost(case, backends: Sequence[str], mode: Optional[str] = None) -> float:
    """Estimated seconds of one case (a ``Case`` or its ``CaseRef``) on ``backends`` (Note [Shard cost])."""
    mode = mode or case.mode
    passes = PASSES.get(mode, 1)
    flops = case.flops
    ran = [b for b in backends if not case.backends or matches(b, case.backends)]
    calls = sum(_overhead(b) + flops / RATE.get(split_version(b)[0], DEFAULT_RATE) for b in ran)
    oracle = 2 * flops / ORACLE_RATE * (1 if mode == "forward" else 3)
    return passes * calls + oracle


def claim_cost(claim) -> float:
    """Estimated seconds of a claim: every side of every point, as a forward case on its one backend."""
    return sum(case_cost(side.case, [side.backend], "forward") for point in claim.points for side in point.sides)


def split(costs: Sequence[tuple[str, float]], n: int) -> list[int]:
    """The shard (0-based) of each item ``(id, cost)``: longest first to the least loaded shard."""
    order = sorted(range(len(costs)), key=lambda i: (-costs[i][1], costs[i][0]))
    loads = [(0.0, s) for s in range(n)]
    shard_of = [0] * len(costs)
    for i in order:
        load, s = heapq.heappop(loads)
        shard_of[i] = s
        heapq.heappush(loads, (load + costs[i][1], s))
    return shard_of


class Sharding:
    """The partition of one selected suite (cases, then claims) into ``n`` shards."""

    def __init__(self, cases: list, claims: list, backends: Sequence[str], mode: Optional[str], n: int):
        self.cases, self.claims, self.n = cases, claims, n
        self.costs = ([(f"case {c.id}", case_cost(c, backends, mode)) for c in cases]
                      + [(f"claim {c.id}", claim_cost(c)) for c in claims])
        self.shard_of = split(self.costs, n)

    def members(self, k: int) -> list[int]:
        """Positions (in cases + claims) of shard ``k`` (1-based), in suite order."""
        return [i for i, s in enumerate(self.shard_of) if s == k - 1]

    def take(self, k: int) -> tuple[list, list]:
        chosen = set(self.members(k))
        return ([c for i, c in enumerate(self.cases) if i in chosen],
                [c for i, c in enumerate(self.claims) if i + len(self.cases) in chosen])

    def estimate(self, k: int) -> float:
        return sum(self.costs[i][1] for i in self.members(k))


def fingerprint(cases: list, claims: list, mode: Optional[str]) -> str:
    """sha256 of what the selected suite runs: each case's id, content and mode, each claim's id and content."""
    items = [[c.id, case_hash(c), mode or c.mode] for c in cases]
    items += [[c.id, c.claim.model_dump(mode="json")] for c in claims]
    text = json.dumps(items, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def registry_hash(registry) -> Optional[str]:
    """sha256 of the registry file's bytes (None: no registry)."""
    if not registry.file:
        return None
    try:
        return hashlib.sha256(Path(registry.file).read_bytes()).hexdigest()
    except OSError:
        return None


def suite_record(cases: list, claims: list, shard: Optional[tuple[int, int]], mode: Optional[str], registry,
                 backends: Sequence[str], check_stale: bool, sharding: Optional[Sharding] = None) -> dict:
    """report.json's ``suite``: what ``conform merge`` compares shards by (module Note)."""
    record = {"fingerprint": fingerprint(cases, claims, mode), "cases": len(cases), "claims": len(claims),
              "mode": mode, "registry": {"file": registry.file or None, "sha256": registry_hash(registry)},
              "shard": list(shard) if shard else None, "check_stale": check_stale}
    if shard and sharding is not None:
        members = set(sharding.members(shard[0]))
        # Where each of this shard's items stands in the whole suite: merged results come out in its order.
        record["case_positions"] = {c.id: i for i, c in enumerate(cases) if i in members}
        record["claim_positions"] = {c.id: i for i, c in enumerate(claims) if i + len(cases) in members}
        record["estimated_s"] = round(sharding.estimate(shard[0]), 3)
        record["unmatched"] = registry.unused(list(backends))
    return record
