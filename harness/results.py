"""A run's results, read back from its journal (``results.jsonl``) one record at a time.

Note [Results on disk]
----------------------
A judged record is a dict of about 2 KB (parameters, metrics, tolerance,
calls, notes) and a run has one per (case, backend, gradient): 5,000 cases
on four backends are 20,000 of them, tens of MB if the parent kept them, and
the reports used to copy them twice more (report.json's cleaning, then the
surrogate cleaning) before rendering every file as one string. Yet the runner
already writes every record to the journal as soon as it is judged, and the
reporters only ever read them in order.

So the parent keeps only an index: per result its byte offset and length in
the journal and its sort key (case position, gradient, backend), a few bytes
each in ``array`` arrays. ``Results`` is a read-only ``Sequence`` over that
index in report order: ``len()``, iteration (one record dict parsed at a time,
nothing cached) and indexing (``os.pread`` of one line). Every reporter makes
its passes over it and keeps only aggregates, or the failing results (see
``harness.report``).

What the index points at is always a complete, classified record: the runner
adds an entry only after the record's line is written and flushed (a torn
last line of an interrupted run is never indexed), and with ``--resume`` the
kept records are reclassified before the journal is rewritten, the offsets
taken from that rewrite (``harness.journal.rewrite_journal``). The journal
must not be truncated while a ``Results`` is read; nothing but the next run in
the same ``--out`` rewrites it.

``Results.mapped`` is a view that transforms each record as it is read
(report.json's cleaning of inf/NaN and lone surrogates), so the cleaned copy is
never held either; the transform runs only on lines that may need it (a line
without ``NaN``, ``Infinity`` or a ``\\ud..`` escape has neither), as each pass
over the results would otherwise pay for it again. ``Mapped`` is the same view
over any other sequence.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Iterator, Optional

#: The position of a gradient among a case's results: forward, then x, w, b, then any other.
GRADIENT_ORDER = {None: 0, "x": 1, "w": 2, "b": 3}


class ResultIndex:
    """Where the run's records are in the journal, gathered while they are written; ``results()`` sorts it."""

    def __init__(self, journal: Path, case_order: dict[str, int], backends: list[str]):
        self.journal = Path(journal)
        self._case_order = case_order
        self._backend_order = {b: i for i, b in enumerate(backends)}
        self._offsets = array("q")
        self._lengths = array("l")
        self._keys = array("q")

    def sort_key(self, record: dict) -> int:
        """Case position, then gradient order, then backend order, as one integer."""
        gradient = min(GRADIENT_ORDER.get(record.get("gradient"), 4), 4)
        return (self._case_order[record["case"]] * 5 + gradient) * len(self._backend_order) \
            + self._backend_order[record["backend"]]

    def add(self, record: dict, offset: int, length: int) -> None:
        """``record`` is the line of ``length`` bytes at ``offset`` of the journal (its newline included)."""
        self._offsets.append(offset)
        self._lengths.append(length)
        self._keys.append(self.sort_key(record))

    def __len__(self) -> int:
        return len(self._offsets)

    def results(self) -> "Results":
        order = sorted(range(len(self._keys)), key=self._keys.__getitem__)   # stable: ties keep write order
        return Results(self.journal, array("q", (self._offsets[i] for i in order)),
                       array("l", (self._lengths[i] for i in order)))


class Results(Sequence):
    """The run's records in report order, parsed from the journal on every read (Note [Results on disk])."""

    def __init__(self, journal: Path, offsets: array, lengths: array,
                 transform: Optional[Callable[[dict], dict]] = None, when: Callable[[bytes], bool] = lambda line: True):
        self.journal = Path(journal)
        self._offsets = offsets
        self._lengths = lengths
        self._transform = transform
        self._when = when

    def mapped(self, transform: Callable[[dict], dict], when: Callable[[bytes], bool] = lambda line: True) -> "Results":
        """These results with ``transform`` applied to each record whose journal line satisfies ``when``."""
        return Results(self.journal, self._offsets, self._lengths, transform, when)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]    # negative indices; IndexError past the end
        fd = os.open(self.journal, os.O_RDONLY)
        try:
            return self._read(fd, index)
        finally:
            os.close(fd)

    def __iter__(self) -> Iterator[dict]:
        if not len(self):
            return
        fd = os.open(self.journal, os.O_RDONLY)
        try:
            for i in range(len(self)):
                yield self._read(fd, i)
        finally:
            os.close(fd)

    def _read(self, fd: int, i: int) -> dict:
        data = os.pread(fd, self._lengths[i], self._offsets[i])
        if len(data) != self._lengths[i]:
            raise OSError(f"{self.journal}: truncated while its results were read")
        record = json.loads(data)
        return self._transform(record) if self._transform is not None and self._when(data) else record

    def __repr__(self) -> str:
        return f"Results({str(self.journal)!r}, {len(self)} records)"


class Mapped(Sequence):
    """``records`` with ``transform`` applied to each as it is read; nothing is kept."""

    def __init__(self, records: Sequence, transform: Callable[[dict], dict]):
        self.records = records
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.transform(r) for r in self.records[index]]
        return self.transform(self.records[index])

    def __iter__(self) -> Iterator[dict]:
        return (self.transform(r) for r in self.records)
