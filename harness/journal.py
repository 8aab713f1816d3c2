"""The results journal (``results.jsonl``) and what ``--resume`` keeps of it.

The runner appends every judged record to the journal as it goes, one JSON
object a line. Each record carries ``case_hash`` (a hash of everything that
decides the result, see ``case_hash()``) and ``backend_version`` (the framework
version that produced it). ``--resume`` keeps a record only when its
(case, backend, gradient) result is planned, the case's content is unchanged and the same
framework version is installed; every other planned pair runs again. A
record written before these fields existed has neither, so it runs again.

Before the resumed run appends, the journal is rewritten (atomically) without
the records of the pairs that run again, so an outdated verdict cannot
survive in the file for a later ``--resume`` to pick up. Records of pairs
this run does not plan (other backends, cases outside ``-k``) are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from harness.cases import Case
from harness.report import atomic_write

Key = tuple[str, str, Optional[str]]    # (case, backend, gradient): None for the forward result


def key_of(record: dict) -> Key:
    return record["case"], record["backend"], record.get("gradient")


def case_hash(case: Case) -> str:
    """A short sha256 of everything that decides a case's results (``case_hash`` in every record).

    The operator, canonical parameters, dtype, data fills and seed, the
    expectation, a tolerance override and the backends restriction: what
    changes a call, its operands or how it is judged. Not the id (the key the
    hash is stored under), nor description, source, file or line, so moving or
    re-documenting a case does not make ``--resume`` run it again. ``case``: a
    ``Case`` (``Case.content_hash`` computes it) or a ``harness.suite.CaseRef``
    (which holds it from validation).
    """
    return case.content_hash


def read_journal(path: Path) -> list[dict]:
    """Complete records of an earlier run's journal; a torn last line is ignored."""
    records = []
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and {"case", "backend", "verdict"} <= set(record):
                records.append(record)
    return records


@dataclass
class ResumePlan:
    """Which planned pairs keep their journal record, and why the others run again."""

    kept: list[dict] = field(default_factory=list)
    edited: int = 0          # a record exists, but the case's content changed since
    version_changed: int = 0  # a record exists, but another framework version is installed now
    new: int = 0             # no record

    @property
    def rerun(self) -> int:
        return self.edited + self.version_changed + self.new

    def summary(self) -> str:
        return (f"resume: kept {len(self.kept)} results, rerunning {self.rerun} "
                f"({self.edited} case changed, {self.version_changed} framework version changed, {self.new} new)")


def plan_resume(records: list[dict], cases: list, backends: list[str],
                versions: dict[str, Optional[str]],
                results_of: Callable[[Case], tuple[Optional[str], ...]] = lambda case: (None,)) -> ResumePlan:
    """Split the planned pairs into kept records and pairs to run again.

    A later record of a pair wins over an earlier one. A kept record gets the
    case's current file, line, description and source: those may change
    without changing the result. ``results_of(case)``: the gradients planned for a case (None: forward).
    ``cases``: ``Case`` objects or the suite's index (``harness.suite.CaseRef``).
    """
    latest: dict[Key, dict] = {key_of(r): r for r in records}
    plan = ResumePlan()
    for case in cases:
        digest = case_hash(case)
        for backend, gradient in ((b, g) for b in backends for g in results_of(case)):
            record = latest.get((case.id, backend, gradient))
            if record is None:
                plan.new += 1
            elif record.get("case_hash") != digest:
                plan.edited += 1
            elif record.get("backend_version") != versions.get(backend):
                plan.version_changed += 1
            else:
                record.update(file=case.file, line=case.line, description=case.description, source=case.source)
                plan.kept.append(record)
    return plan


def rewrite_journal(path: Path, records: list[dict], plan: ResumePlan,
                    planned: set[Key]) -> list[tuple[dict, int, int]]:
    """Rewrite the journal with the kept records and those of pairs this run does not plan, one per pair.

    Returns ``(record, offset, length)`` of each kept record's line in the new file (its bytes, newline
    included): the run's results index them (``harness.results``)."""
    kept = {key_of(r) for r in plan.kept}
    latest: dict[Key, dict] = {key_of(r): r for r in records}
    lines, where, offset = [], [], 0
    for key, record in latest.items():
        if key in kept or key not in planned:
            line = json.dumps(record, sort_keys=True) + "\n"
            size = len(line.encode("utf-8"))
            if key in kept:
                where.append((record, offset, size))
            lines.append(line)
            offset += size
    atomic_write(path, "".join(lines))
    return where
