"""The known-divergence registry (``cases/known_divergences.yaml``, DESIGN.md §4).

An entry names results by case-id glob (``*`` and ``?`` only; ``[`` is
literal, since matrix ids contain brackets), backend (id or framework prefix)
and an optional framework version range (a ``packaging`` specifier), and says
which verdict is expected there, why, and where the evidence is::

    divergences:
      - id: F1
        cases: ["stride-kernel-padding[stride=2,kernel_size=1,padding=valid]"]
        backend: mindspore.nn
        versions: ">=2.0"
        verdict: shape_mismatch
        reason: MindSpore's pad_mode='valid' gives H·s when the kernel is smaller than the stride
        link: docs/findings.md#f1

A matching result with the expected verdict becomes ``xfail``; a matching
result that passes becomes ``xpass`` (the divergence is gone: remove the
entry); an entry that matches no result of the run is *stale* and reported.
A matching result that fails *differently* keeps its own verdict.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.backends import matches as backend_matches
from harness.userfile import read_text
from harness.yamlsrc import Problem, ProblemsError, load_yaml

FAILING = ["shape_mismatch", "value_mismatch", "unexpected_error", "missing_error", "crash", "timeout"]


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1)
    cases: Union[str, list[str]]
    backend: str = Field(min_length=1)
    versions: Optional[str] = None
    verdict: Union[Literal[tuple(FAILING)], list[Literal[tuple(FAILING)]]]
    reason: str = Field(min_length=10)
    link: Optional[str] = None

    @field_validator("versions")
    @classmethod
    def _versions(cls, v):
        if v is not None:
            try:
                SpecifierSet(v)
            except InvalidSpecifier as exc:
                raise ValueError(f"not a version range: {exc}") from None
        return v

    def globs(self) -> list[str]:
        return [self.cases] if isinstance(self.cases, str) else list(self.cases)

    def verdicts(self) -> list[str]:
        return [self.verdict] if isinstance(self.verdict, str) else list(self.verdict)


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    divergences: list[Entry] = []


def _glob(pattern: str) -> re.Pattern:
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + r"\Z")


@dataclass
class Registry:
    entries: list[Entry] = field(default_factory=list)
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def match(self, result: dict, version: Optional[str]) -> Optional[Entry]:
        for entry in self.entries:
            if not backend_matches(result["backend"], [entry.backend]):
                continue
            if not any(_glob(g).match(result["case"]) for g in entry.globs()):
                continue
            if entry.versions and version:
                try:
                    if Version(version.split("+")[0]) not in SpecifierSet(entry.versions):
                        continue
                except InvalidVersion:
                    pass
            return entry
        return None

    def classify(self, result: dict, version: Optional[str]) -> None:
        """Turn a matching result into xfail/xpass (in place) and remember the entry as used."""
        entry = self.match(result, version)
        if entry is None:
            return
        self.used.add(entry.id)
        # The record keeps its raw verdict in `original_verdict`, so a resumed run can re-judge it.
        result["divergence"] = {"id": entry.id, "reason": entry.reason, "link": entry.link}
        if result["verdict"] in entry.verdicts():
            result["original_verdict"], result["verdict"] = result["verdict"], "xfail"
        elif result["verdict"] == "pass":
            result["verdict"] = "xpass"
            result["reason"] = f"known divergence {entry.id} expected {'/'.join(entry.verdicts())}, but it passed"

    def stale(self, backends: Optional[list[str]] = None) -> list[dict]:
        """Entries that matched no result classified so far, as report records.

        Only entries for ``backends`` (the run's) count: an entry for a backend
        that did not run cannot have matched anything.
        """
        return [{"id": e.id, "file": self.file, "line": self.lines.get(e.id, 1), "backend": e.backend,
                 "cases": e.globs(), "reason": "matches no result of this run"}
                for e in self.entries if e.id not in self.used
                and (backends is None or any(backend_matches(b, [e.backend]) for b in backends))]


def load(path: Path) -> Registry:
    """Load the registry; a missing file is an empty registry. Raises ``ProblemsError``."""
    if not path.exists() or str(path) == os.devnull:   # `--registry /dev/null`: no registry
        return Registry()
    file = str(path)
    located = load_yaml(read_text(path, file), file)   # user input: same size/special-file rules as cases
    try:
        parsed = RegistryFile.model_validate(located.value or {})
    except ValidationError as exc:
        problems, named = [], set()
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, int) or str(p).isidentifier())
            name = ".".join(str(p) for p in loc) or "divergences"
            if name in named:   # one problem per field, not one per branch of a Union
                continue
            named.add(name)
            problems.append(Problem(file, located.line_of(loc), name, err["msg"].removeprefix("Value error, ")))
        raise ProblemsError(problems) from None
    lines, seen, problems = {}, set(), []
    for index, entry in enumerate(parsed.divergences):
        lines[entry.id] = located.line_of(("divergences", index))
        if entry.id in seen:
            problems.append(Problem(file, lines[entry.id], f"divergences[{index}].id", f"duplicate id {entry.id!r}"))
        seen.add(entry.id)
    if problems:
        raise ProblemsError(problems)
    return Registry(parsed.divergences, file, lines)
