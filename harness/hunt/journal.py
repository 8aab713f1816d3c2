"""The hunt's journal (``DIR/hunt-journal.jsonl``): what each round ran and what came back, for ``--resume``.

The first line is a header (``conform.hunt-journal/1``: operator, seed,
backends, their versions, the registry and whether it was ignored); then one
line per completed round: the calls it planned (as a digest of their
fields), the results (the fields the hunt reads, ``engine.KEEP``) and how
long it took. Since the hunt is deterministic, a resumed hunt plans the same
rounds again and takes their results from here instead of running them: it
arrives at the state the interrupted hunt had and goes on. A header that
differs (another seed, other versions, another registry) is refused: the
rounds would not be the same ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

SCHEMA = "conform.hunt-journal/1"


class JournalMismatch(Exception):
    """``--resume`` into a folder whose journal is of another hunt (a usage error)."""


def digest(planned) -> str:
    text = json.dumps([[case_id, fields, backend] for case_id, fields, backend, _ in planned], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Journal:
    def __init__(self, path: Path, header: dict, resume: bool):
        self.path = path
        self.rounds: list[dict] = []
        header = {"schema": SCHEMA, **header}
        if resume and path.exists():
            lines = []
            for text in path.read_text(encoding="utf-8").splitlines():
                try:
                    lines.append(json.loads(text))
                except ValueError:   # the line a kill tore: everything before it stands
                    break
            if lines and lines[0] != header:
                old = lines[0]
                differs = sorted(k for k in set(old) | set(header) if old.get(k) != header.get(k))
                raise JournalMismatch(f"{path} is the journal of another hunt (it differs in: {', '.join(differs)}); "
                                      "run without --resume to start afresh, or use another --out")
            self.rounds = [line for line in lines[1:] if line.get("complete")]
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", encoding="utf-8")
        self._write(header)
        for line in self.rounds:   # only complete rounds survive (a torn last line is dropped)
            self._write(line)

    def _write(self, line: dict) -> None:
        self.file.write(json.dumps(line, sort_keys=True) + "\n")
        self.file.flush()

    def replay(self, number: int, planned) -> Optional[tuple[list[dict], float]]:
        """The recorded results of round ``number`` if the journal has it (it must have planned the same)."""
        if number >= len(self.rounds):
            return None
        line = self.rounds[number]
        if line["digest"] != digest(planned):
            raise JournalMismatch(f"{self.path}: round {number} planned other calls than this hunt would "
                                  "(conform changed since); run without --resume to start afresh")
        return line["records"], line["duration_s"]

    def append(self, number: int, planned, records: list[dict], duration_s: float) -> None:
        self._write({"round": number, "digest": digest(planned), "records": records,
                     "duration_s": round(duration_s, 3), "complete": True})

    def close(self) -> None:
        self.file.close()
