"""The known-divergence registry (``cases/known_divergences.yaml``, DESIGN.md §4, §8).

An entry selects results by backend (id or framework prefix), an optional
framework version range (a ``packaging`` specifier), declarative conditions
on the case (``when``: its canonical parameters, ``dtype`` and the values the
operator's semantics derives, see ``harness.conditions`` and the operator's
``DERIVED``) and/or case-id globs (``*`` and ``?`` only; ``[`` is literal,
since matrix ids contain brackets). It says which verdict is expected there,
why, and where the evidence is::

    divergences:
      - id: F1
        backend: mindspore.nn
        versions: ">=2.0"
        when: {padding_form: valid, kernel_below_stride: true, output_size_is_default: true}
        verdict: shape_mismatch
        reason: MindSpore's pad_mode='valid' gives H·s when the kernel is smaller than the stride
        link: docs/findings.md#f1

An entry selects forward results unless it names ``gradient`` (``x``, ``w``,
``b`` or a list): then it selects those gradient results (Note [Gradients] in
``harness/backends/autodiff.py``). A gradient result whose *forward* failed
(``forward_failed``) repeats the forward's verdict and is classified by the
forward's entries.

A matching result with the expected verdict becomes ``xfail``; a matching
result that passes becomes ``xpass`` (the divergence is gone: remove the
entry), unless the entry is ``intermittent`` (it shows on some runs or inputs only); a matching result that fails *differently* keeps its own verdict.
Results the backend could not run (``unsupported``, ``skipped``) are not
observations and match nothing. An entry that matches no result of the run is
*stale* and reported.

A failing result that matches no entry *resembles* one when the backend,
version and verdict fit and all of the entry's conditions (each ``when`` key,
and the globs) but one hold; the record then names it and the condition that
failed (``resembles: {id, link, href, failed_conditions}``).

``link`` is a URL or a path relative to the registry's folder or its parent
(``docs/findings.md#f1`` next to ``cases/``); records carry it as written and,
when the file exists, as ``href`` (a ``file:`` URI) for reports to link.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import conditions, ops
from harness.backends import matches as backend_matches
from harness.backends import registry as backend_registry
from harness.globs import compile_glob as _glob
from harness.userfile import read_text
from harness.yamlsrc import Problem, ProblemsError, load_yaml

FAILING = ["shape_mismatch", "value_mismatch", "unexpected_error", "missing_error", "crash", "timeout"]


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1)
    backend: str = Field(min_length=1)
    versions: Optional[str] = None
    op: Optional[str] = None
    when: Optional[dict[str, Any]] = None
    cases: Union[str, list[str], None] = None
    verdict: Union[Literal[tuple(FAILING)], list[Literal[tuple(FAILING)]]]
    #: The gradient results selected (absent: the forward results).
    gradient: Union[Literal["x", "w", "b"], list[Literal["x", "w", "b"]], None] = None
    #: The divergence shows on some runs or inputs only (memory corruption, a kernel reading the wrong
    #: elements): a matching result that passes stays ``pass`` instead of becoming ``xpass``.
    intermittent: bool = False
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

    @field_validator("cases")
    @classmethod
    def _cases(cls, v):
        if v is not None and (not v or any(not g for g in ([v] if isinstance(v, str) else v))):
            raise ValueError("case-id globs must be non-empty")
        return v

    @model_validator(mode="after")
    def _selects(self):
        if self.when is None and self.cases is None:
            raise ValueError("an empty selector: give `when` (conditions on the case) and/or `cases` (id globs)")
        return self

    def globs(self) -> list[str]:
        return [] if self.cases is None else [self.cases] if isinstance(self.cases, str) else list(self.cases)

    def verdicts(self) -> list[str]:
        return [self.verdict] if isinstance(self.verdict, str) else list(self.verdict)

    def gradients(self) -> list[str]:
        return [] if self.gradient is None else [self.gradient] if isinstance(self.gradient, str) else list(self.gradient)


def result_kind(result: dict) -> Optional[str]:
    """What an entry must name to select ``result``: None for a forward result (or a gradient result whose
    forward failed, which repeats the forward's verdict), else the gradient's operand."""
    return None if result.get("forward_failed") else result.get("gradient")


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    divergences: list[Entry] = []


def condition_names(op_name: str) -> dict[str, str]:
    """Every name a ``when`` may test for operator ``op_name``, with what it means."""
    op = ops.get(op_name)
    return {"dtype": "the case dtype", **{k: "case parameter" for k in op.Params.model_fields}, **op.DERIVED}


def case_values(result: dict) -> Optional[dict]:
    """The values conditions test for one result record (None when the record cannot say)."""
    try:
        op = ops.get(result["op"])
        return {**result["params"], "dtype": result["dtype"], **op.derived(result["params"], result.get("data") or {})}
    except (KeyError, TypeError, ValueError):   # a record from an older or foreign journal
        return None


@dataclass
class Selector:
    """An entry with its conditions compiled and its link resolved."""

    entry: Entry
    when: Optional[conditions.Conditions]
    href: Optional[str] = None

    def failing(self, result: dict, values: Optional[dict]) -> list[str]:
        """The entry's conditions (``when`` keys, ``cases``) that do not hold for ``result``."""
        failed = []
        if self.when is not None:
            if values is None or result.get("op") != self.entry.op:
                return ["op"]
            failed += self.when.failing(values)
        if self.entry.cases is not None and not any(_glob(g).match(result["case"]) for g in self.entry.globs()):
            failed.append("cases")
        return failed

    def applies(self, result: dict, version: Optional[str]) -> bool:
        """Backend and version range fit (the part of the selector that is not about the case)."""
        if not backend_matches(result["backend"], [self.entry.backend]):
            return False
        kind = result_kind(result)
        if (kind is None) != (self.entry.gradient is None) or (kind is not None and kind not in self.entry.gradients()):
            return False
        if self.entry.versions and version:
            try:
                return Version(version.split("+")[0]) in SpecifierSet(self.entry.versions)
            except InvalidVersion:
                pass
        return True

    def size(self) -> int:
        return (len(self.when.clauses) if self.when else 0) + (self.entry.cases is not None)

    def note(self, **extra) -> dict:
        out = {"id": self.entry.id, "reason": self.entry.reason, "link": self.entry.link, **extra}
        if self.href:
            out["href"] = self.href
        return out


NOT_OBSERVED = ("unsupported", "skipped")


@dataclass
class Registry:
    selectors: list[Selector] = field(default_factory=list)
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    #: Which kinds of results were classified: "forward" and/or "gradient" (an entry of a kind the run
    #: did not produce cannot have matched anything, so it is not stale).
    kinds: set[str] = field(default_factory=set)

    @property
    def entries(self) -> list[Entry]:
        return [s.entry for s in self.selectors]

    def match(self, result: dict, version: Optional[str], values: Any = ...) -> Optional[Selector]:
        if result["verdict"] in NOT_OBSERVED:
            return None
        values = case_values(result) if values is ... else values
        for selector in self.selectors:
            if selector.applies(result, version) and not selector.failing(result, values):
                return selector
        return None

    def resembles(self, result: dict, version: Optional[str], values: Any = ...) -> Optional[dict]:
        """The first entry a failing, unmatched result resembles (all its conditions but one hold)."""
        values = case_values(result) if values is ... else values
        for selector in self.selectors:
            if selector.size() < 2 or result["verdict"] not in selector.entry.verdicts():
                continue
            if selector.applies(result, version):
                failed = selector.failing(result, values)
                if len(failed) == 1 and failed != ["op"]:
                    return selector.note(failed_conditions=failed)
        return None

    def classify(self, result: dict, version: Optional[str]) -> None:
        """Turn a matching result into xfail/xpass (in place) and remember the entry as used;
        note the entry an unmatched failure resembles."""
        values = case_values(result)
        self.kinds.add("gradient" if result.get("gradient") else "forward")
        selector = self.match(result, version, values)
        if selector is None:
            if result["verdict"] in FAILING:
                note = self.resembles(result, version, values)
                if note:
                    result["resembles"] = {k: v for k, v in note.items() if k != "reason"}
            return
        entry = selector.entry
        self.used.add(entry.id)
        # The record keeps its raw verdict in `original_verdict`, so a resumed run can re-judge it.
        result["divergence"] = selector.note()
        if result["verdict"] in entry.verdicts():
            result["original_verdict"], result["verdict"] = result["verdict"], "xfail"
        elif result["verdict"] == "pass" and entry.intermittent:
            result["divergence"]["intermittent"] = True     # not observed this time; it may be next time
        elif result["verdict"] == "pass":
            result["verdict"] = "xpass"
            result["reason"] = f"known divergence {entry.id} expected {'/'.join(entry.verdicts())}, but it passed"

    def stale(self, backends: Optional[list[str]] = None) -> list[dict]:
        """Entries that matched no result classified so far, as report records.

        Only entries for ``backends`` (the run's) count: an entry for a backend
        that did not run cannot have matched anything; nor can an entry of a kind
        (forward or gradient) of which no result was classified.
        """
        return [{k: v for k, v in record.items() if k != "kind"}
                for record in self.unused(backends) if record["kind"] in self.kinds]

    def unused(self, backends: Optional[list[str]] = None) -> list[dict]:
        """Entries for ``backends`` that matched no result so far, whatever the kinds classified, each with its
        ``kind`` (forward or gradient): a shard's candidates for stale (``conform merge`` decides)."""
        return [{"id": e.id, "file": self.file, "line": self.lines.get(e.id, 1), "backend": e.backend,
                 "cases": e.globs(), "reason": "matches no result of this run",
                 "kind": "gradient" if e.gradient else "forward"}
                for e in self.entries if e.id not in self.used
                and (backends is None or any(backend_matches(b, [e.backend]) for b in backends))]


def _href(link: Optional[str], folder: Path) -> Optional[str]:
    """A link reports can follow: an http(s) URL as is, a relative path that exists as a file: URI."""
    if not link:
        return None
    if re.match(r"https?://", link):
        return link
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", link):   # any other scheme (javascript:, data:) is not followed
        return None
    path, _, anchor = link.partition("#")
    for base in (folder, folder.parent):
        target = (base / path).resolve()
        if path and target.is_file():
            return target.as_uri() + (f"#{anchor}" if anchor else "")
    return None


def _backend_known(selector: str) -> bool:
    return any(b == selector or b.split(".")[0] == selector for b in backend_registry())


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
            name = _name(loc) or "divergences"   # divergences[0].verdict, as every other problem
            if name in named:   # one problem per field, not one per branch of a Union
                continue
            named.add(name)
            problems.append(Problem(file, located.line_of(loc), name, err["msg"].removeprefix("Value error, ")))
        raise ProblemsError(problems) from None
    lines, seen, problems, selectors = {}, set(), [], []
    for index, entry in enumerate(parsed.divergences):
        where = ("divergences", index)
        lines[entry.id] = located.line_of(where)
        if entry.id in seen:
            problems.append(Problem(file, lines[entry.id], f"divergences[{index}].id", f"duplicate id {entry.id!r}"))
        seen.add(entry.id)
        if not _backend_known(entry.backend):
            problems.append(Problem(file, located.line_of(where + ("backend",)), f"divergences[{index}].backend",
                                    f"unknown backend {entry.backend!r}; known: {', '.join(backend_registry())}"))
        compiled = None
        if entry.when is not None:
            if entry.op is None and len(ops.OPS) == 1:
                entry.op = next(iter(ops.OPS))
            if entry.op not in ops.OPS:
                problems.append(Problem(file, located.line_of(where + ("op",)), f"divergences[{index}].op",
                                        f"unknown or missing operator {entry.op!r} (conditions are on one "
                                        f"operator's parameters); known: {', '.join(ops.OPS)}"))
                continue
            compiled, found = conditions.parse(entry.when, condition_names(entry.op), where + ("when",))
            problems += [Problem(file, located.line_of(p), _name(p), m) for p, m in found]
        selectors.append(Selector(entry, compiled, _href(entry.link, path.parent)))
    if problems:
        raise ProblemsError(problems)
    return Registry(selectors, file, lines)


def _name(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))
