"""Where a run's time went: the backends' own time against the wall clock (report.json ``timing``).

Note [Throughput]
-----------------
Each worker measures, around every call, its CPU time (``Outcome.worker_cpu_ms``:
all the worker's threads; the conversions, the framework's own set-up of the
call, the native call, autodiff), its wall time (``worker_ms``) and, inside
it, the native call alone (``duration_ms``, wall). The CPU time is the work:
core-seconds no schedule can avoid, and which, unlike wall time, does not grow
when other processes compete for the cores (on 2 cores shared by ten workers
and the parent, a call's wall time is mostly waiting: summed, the workers'
wall times exceed the run's own wall time). So a run on ``cores`` cores with
at most ``jobs`` calls at once cannot take less than

    lower bound = Σ worker CPU time ÷ min(jobs, cores)

(``cores_bound_s``) and ``wall_over_bound`` = wall ÷ that bound is the harness's
cost: preparing operands and oracles in the parent, judging, IPC, writing
results and reproducers, starting the workers, and cores left idle. The
parent's own CPU time over the run (``parent_cpu_s``) says how much of that
was work in the parent. ``busiest_backend`` is the backend with the most CPU
time. ``make bench`` and the terminal quote the ratio; it is measured in the
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
    """One backend's calls: how many, the worker's CPU and wall time and the native calls' time (milliseconds)."""
    calls: int = 0
    cpu_ms: float = 0.0
    worker_ms: float = 0.0
    native_ms: float = 0.0

    def add(self, outcomes: Iterable) -> None:
        for outcome in outcomes:
            self.calls += 1
            self.cpu_ms += outcome.worker_cpu_ms or 0.0
            self.worker_ms += outcome.worker_ms or 0.0
            self.native_ms += outcome.duration_ms or 0.0


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parent_peak_bytes() -> int:
    """This process's peak resident memory so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def parent_cpu_s() -> float:
    """This process's CPU time so far, every thread (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timing(clocks: dict[str, CallClock], wall_s: float, jobs: int, results: int, parent_cpu: float = 0.0) -> dict:
    """report.json's ``timing`` record of a run (Note [Throughput]); ``parent_cpu``: the parent's CPU seconds
    over the run."""
    cores = usable_cores()
    cpu_s = sum(c.cpu_ms for c in clocks.values()) / 1e3
    bound = cpu_s / max(1, min(jobs, cores))
    busiest = max((b for b in clocks if clocks[b].calls), key=lambda b: clocks[b].cpu_ms, default=None)
    return {
        "wall_s": round(wall_s, 3), "jobs": jobs, "cores": cores, "results": results,
        "calls": sum(c.calls for c in clocks.values()),
        "cpu_s": round(cpu_s, 3), "worker_s": round(sum(c.worker_ms for c in clocks.values()) / 1e3, 3),
        "native_s": round(sum(c.native_ms for c in clocks.values()) / 1e3, 3),
        "cores_bound_s": round(bound, 3), "lower_bound_s": round(bound, 3),
        "wall_over_bound": round(wall_s / bound, 3) if bound else None,
        "parent_cpu_s": round(parent_cpu, 3),
        "busiest_backend": busiest, "busiest_backend_cpu_s": round(clocks[busiest].cpu_ms / 1e3, 3) if busiest else 0.0,
        "results_per_s": round(results / wall_s, 1) if wall_s else None,
        "parent_peak_mib": round(parent_peak_bytes() / 2**20, 1),
        "backends": {b: {"calls": c.calls, "cpu_s": round(c.cpu_ms / 1e3, 3), "worker_s": round(c.worker_ms / 1e3, 3),
                         "native_s": round(c.native_ms / 1e3, 3)} for b, c in clocks.items() if c.calls},
    }
