"""The memory budget (``--max-memory``): what one case needs, per process, against the limit.

The budget applies to every process of a run on its own: the parent (which
holds the operands, the oracle's output and magnitude, and every backend's
answer until the case is judged) and each worker (the parent kills one whose
resident memory passes it). A case is refused at validation when either
would need more than the budget:

    parent:  PARENT_RESIDENT + the operator's parent data bytes
    worker:  the largest ``Backend.resident_bytes`` among the selected backends
             + the operator's worker data bytes

The data bytes come from the operator (``footprint(params, dtype, outputs)``),
the resident figures were measured (peak RSS, ``VmHWM``, on a 5×5 case).
The default budget is half of the memory available when the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.backends import load_class, registry

GIB = 1 << 30

#: The parent's resident memory before any case: Python, NumPy, pydantic, rich (measured 56 MiB), and Numba
#: with the float64 oracles' compiled loops, loaded at the first case that takes them (170 MiB in all).
PARENT_RESIDENT = 192 << 20


@dataclass(frozen=True)
class Budget:
    limit: int                 # bytes, for each process
    framework_bytes: int       # the largest resident baseline among the backends that will run
    outputs: int               # how many answers the parent holds at once for a case

    @classmethod
    def for_backends(cls, limit: int, backend_ids: Optional[list[str]] = None) -> "Budget":
        """The budget of a run of ``backend_ids`` (default: every known backend)."""
        known = registry()
        ids = [b for b in (backend_ids if backend_ids is not None else known) if b in known]
        resident = [load_class(known[b]).resident_bytes for b in ids]
        return cls(limit, max(resident, default=0), max(len(ids), 1))

    def need(self, op, params, dtype: str) -> int:
        """Estimated peak resident bytes of the hungriest process for one case."""
        parent, worker = op.footprint(params, dtype, self.outputs)
        return max(PARENT_RESIDENT + parent, self.framework_bytes + worker)


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (bytes), or 8 GiB where unknown."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 8 * GIB


def default_memory_budget() -> int:
    """Half of the memory available now: room for the frameworks' own footprint."""
    return available_memory() // 2
