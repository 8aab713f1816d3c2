"""The validated suite as a compact index, and the ``Case`` objects rebuilt one file at a time as a run needs them.

Note [Case index]
-----------------
A ``Case`` holds its validated fields, parameters, the resolved call and the
line of every field (several kilobytes); reading a file costs ~40 KB per case
while it lasts. A run of tens of thousands of cases must not hold all of that
from validation to the end, so ``conform run``, ``list`` and ``validate``
validate every file up front exactly as ``harness.cases.load_suite`` does
(every problem of every file, duplicate ids, the size and memory limits,
nothing run while a problem remains) but keep one ``CaseRef`` per case: what
planning needs (``-k``, ``--op``, ``--shard``'s cost, ``--resume``'s content
hash, the suite record) and where the case lives. ``Case`` has the same
attributes, so the planning code takes a list of either. Only the runner's
producer rebuilds cases (``materialise``), a file when the run reaches it:
the parent holds the index, one file being read and the window of prepared
cases, whatever the suite's size.

Note [Edited during a run]
--------------------------
A file is read twice: when validated and when the run reaches it. If its text
differs the second time (someone edits the suite during a long run), a case
still runs only when it is exactly what was validated: same id, same content
(``case_hash``) and mode, still valid. Every other case of the file is not run
and named (``on_changed``); the run is then incomplete (exit 1, never a
passing gate), so ``conform run --resume`` runs those cases, validated afresh,
and keeps everything else. Running the new text unvalidated, or quietly
leaving cases out, is what a user must never get.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

from harness.cases import Case, iter_file, load_suite
from harness.memory import Budget
from harness.userfile import read_text
from harness.yamlsrc import Problem, ProblemsError


@dataclass(frozen=True, slots=True, eq=False)
class SuiteFile:
    """A validated case file: where it is, and the digest of the text that was validated."""
    path: Path
    display: str
    sha256: str


@dataclass(frozen=True, slots=True, eq=False)
class CaseRef:
    """What a run needs of one case before it reaches its file (Note [Case index]); a few hundred bytes."""
    id: str
    op: str
    file: str
    line: int
    mode: str
    backends: Optional[tuple[str, ...]]
    description: Optional[str]
    source: Optional[str]
    content_hash: str
    flops: float
    gradients: tuple[str, ...]
    origin: SuiteFile


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _Interned(dict):
    """One object per distinct value (modes, backend lists, gradient tuples repeat across a suite)."""

    def __missing__(self, key):
        self[key] = key
        return key


def index_suite(paths: list[str], memory_budget: Union[Budget, int, None] = None) -> list[CaseRef]:
    """``load_suite``'s validation, keeping a ``CaseRef`` per case; raise ``ProblemsError`` with all problems."""
    shared = _Interned()
    return load_suite(paths, memory_budget, keep=lambda path, text, cases: index_file(path, text, cases, shared))


def index_file(path: Path, text: str, cases: list[Case], shared: Optional[dict] = None,
               display: Optional[str] = None) -> list[CaseRef]:
    """The entries of one validated file's ``cases``, read from ``text`` (``display``: its name in messages)."""
    shared = _Interned() if shared is None else shared
    origin = SuiteFile(path, display or str(path), _digest(text))
    return [CaseRef(case.id, case.op, case.file, case.line, shared[sys.intern(case.mode)],
                    shared[tuple(case.backends)] if case.backends is not None else None,
                    case.description, case.source, case.content_hash, float(case.flops),
                    shared[case.gradients], origin) for case in cases]


def materialise(items: Iterable[Union[Case, CaseRef]],
                on_changed: Optional[Callable[[str], None]] = None) -> Iterator[Case]:
    """The ``Case`` of each item, in order: a ``Case`` is itself; ``CaseRef``s are rebuilt from their file, read
    once per run of consecutive items from it (Note [Edited during a run]: one that cannot be rebuilt as
    validated is left out, and ``on_changed(message)`` says which)."""
    group: list[CaseRef] = []
    for item in items:
        if isinstance(item, CaseRef):
            if group and item.origin is not group[0].origin:
                yield from _rebuild(group, on_changed)
                group = []
            group.append(item)
            continue
        if group:
            yield from _rebuild(group, on_changed)
            group = []
        yield item
    if group:
        yield from _rebuild(group, on_changed)


def _rebuild(refs: list[CaseRef], on_changed: Optional[Callable[[str], None]]) -> Iterator[Case]:
    origin = refs[0].origin
    try:
        text = read_text(origin.path, origin.display)
    except ProblemsError as exc:
        text, why = None, f"cannot be read any more ({exc.problems[0].message})"
    if text is not None and _digest(text) == origin.sha256:
        # The text that was validated: the same cases come out, in the same order (no budget check: it
        # would decide as it did). Wanted ones are picked as they are built, one at a time.
        wanted = iter(refs)
        want = next(wanted)
        for case in iter_file(origin.path, origin.display, text=text):
            if case.id == want.id:
                yield case
                want = next(wanted, None)
                if want is None:
                    return
        missing = [want, *wanted]   # cannot happen with the same text; never silently fewer cases
        why = "gave fewer cases when read again"
    elif text is not None:
        rebuilt: dict[str, Case] = {}
        problems: list[Problem] = []
        ids = {ref.id for ref in refs}
        try:
            for case in iter_file(origin.path, origin.display, problems=problems, text=text):
                if case.id in ids:
                    rebuilt.setdefault(case.id, case)
        except ProblemsError:
            pass   # what was built before the stop still counts
        missing = []
        for ref in refs:
            case = rebuilt.pop(ref.id, None)
            if case is not None and case.content_hash == ref.content_hash and case.mode == ref.mode:
                yield case
            else:
                missing.append(ref)
        why = "changed after it was validated (a case not run is no longer as validated)"
    else:
        missing = refs
    if missing and on_changed is not None:
        shown = ", ".join(ref.id for ref in missing[:5]) + (", …" if len(missing) > 5 else "")
        on_changed(f"{origin.display} {why}; not run: {len(missing)} of its cases ({shown})")
