"""Where a run's time went: the backends' own time against the wall clock (report.json ``timing``).

Note [Throughput]
-----------------
Each worker measures its whole time on a call (``Outcome.worker_ms``: the
conversions, the framework's own set-up of the call, the native call,
autodiff) and, inside it, the native call alone (``duration_ms``). The sum of
the workers' time is work no schedule can avoid, so a run of ``jobs`` calls at
once on ``cores`` cores cannot take less than

    cores bound = Σ worker time ÷ min(jobs, cores)

and, since a backend's worker answers one call at a time, no less than the
slowest backend's own total either:

    lower bound = max(cores bound, max over backends of its worker time)

The wall time over the lower bound is the harness's cost: preparing operands
and oracles, judging, IPC, writing results, starting the workers, and cores
left idle (``wall_over_cores_bound`` is the ratio to the cores bound alone).
``make bench`` and the terminal quote the ratios; they are measured in the
same run, so a noisy machine slows both sides. Calls that crash or time out
have no worker time and are not counted.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Iterable


@dataclass
class CallClock:
    """One backend's calls: how many, the workers' time and the native calls' time (milliseconds)."""
    calls: int = 0
    worker_ms: float = 0.0
    native_ms: float = 0.0

    def add(self, outcomes: Iterable) -> None:
        for outcome in outcomes:
            self.calls += 1
            self.worker_ms += outcome.worker_ms or 0.0
            self.native_ms += outcome.duration_ms or 0.0


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parent_peak_bytes() -> int:
    """This process's peak resident memory so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timing(clocks: dict[str, CallClock], wall_s: float, jobs: int, results: int) -> dict:
    """report.json's ``timing`` record of a run (Note [Throughput])."""
    cores = usable_cores()
    worker_s = sum(c.worker_ms for c in clocks.values()) / 1e3
    cores_bound = worker_s / max(1, min(jobs, cores))
    slowest = max(clocks, key=lambda b: clocks[b].worker_ms, default=None)
    slowest_s = clocks[slowest].worker_ms / 1e3 if slowest else 0.0
    bound = max(cores_bound, slowest_s)
    return {
        "wall_s": round(wall_s, 3), "jobs": jobs, "cores": cores, "results": results,
        "calls": sum(c.calls for c in clocks.values()),
        "worker_s": round(worker_s, 3), "native_s": round(sum(c.native_ms for c in clocks.values()) / 1e3, 3),
        "cores_bound_s": round(cores_bound, 3), "slowest_backend": slowest, "slowest_backend_s": round(slowest_s, 3),
        "lower_bound_s": round(bound, 3),
        "wall_over_bound": round(wall_s / bound, 3) if bound else None,
        "wall_over_cores_bound": round(wall_s / cores_bound, 3) if cores_bound else None,
        "results_per_s": round(results / wall_s, 1) if wall_s else None,
        "parent_peak_mib": round(parent_peak_bytes() / 2**20, 1),
        "backends": {b: {"calls": c.calls, "worker_s": round(c.worker_ms / 1e3, 3),
                         "native_s": round(c.native_ms / 1e3, 3)} for b, c in clocks.items() if c.calls},
    }
