"""What conform reads about the host CPU: the first processor's fields of ``/proc/cpuinfo``.

One reader for the report's CPU name (``runner``), the compile caches' host
key (``envs``) and the benchmark's peak (``bench``). Elsewhere than Linux
the fields are empty and each caller falls back to ``platform``.
"""

from __future__ import annotations

import functools
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=None)
def fields(path: Path = CPUINFO) -> dict[str, str]:
    """``{name: value}`` of the first processor in ``path`` (empty when it cannot be read)."""
    found: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return found
    for line in text.splitlines():
        if not line.strip():
            if found:
                break                       # the end of the first processor's block
            continue
        name, _, value = line.partition(":")
        found.setdefault(name.strip(), value.strip())
    return found


def flags(path: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags (x86 ``flags``, Arm ``Features``)."""
    info = fields(path)
    return frozenset((info.get("flags") or info.get("Features") or "").split())
