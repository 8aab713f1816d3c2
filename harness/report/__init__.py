"""Reporters: report.json (the contract, DESIGN.md §7) and the terminal summary.

Every file is written atomically (temporary file in the same folder, then
rename), so a reader never sees half a report. Large arrays (a run's results,
the HTML page's rows) are written item by item (``write_json_object``), never
held whole as text.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)   # mkstemp makes 0600; reports are for people and CI artifact viewers
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_object(handle: IO[str], pairs: Iterable[tuple[str, Any]], encode: Callable[[Any], str],
                      streamed: Iterable[str] = ()) -> None:
    """``{key: value, ...}`` as JSON text onto ``handle``. The values of the ``streamed`` keys are iterables
    written as arrays one item at a time; each item, and every other value, is ``encode``d."""
    streamed = set(streamed)
    handle.write("{")
    for n, (key, value) in enumerate(pairs):
        handle.write(("," if n else "") + json.dumps(key) + ":")
        if key in streamed:
            handle.write("[")
            for i, item in enumerate(value):
                handle.write(("," if i else "") + encode(item))
            handle.write("]")
        else:
            handle.write(encode(value))
    handle.write("}")
