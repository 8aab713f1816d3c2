"""Case files (DESIGN.md §4) -> validated, expanded ``Case`` objects (the model: ``harness.casemodel``).

A case file has ``op``, optional ``defaults`` merged into every case, and
``cases``; a case with ``matrix`` expands into one case per point of the
cartesian product, with ids like ``sweep[stride=2,padding=same]``. Fields
common to every operator live in ``CaseFields``; operator fields are validated
by the operator's own ``Params`` model.

Every problem in every file is collected and reported as
``file:line: field: message``; nothing runs while any problem remains.

Ids follow one rule (``ID_PATTERN``, at most ``ID_MAX`` characters) whether
written or built from matrix values: a matrix value that cannot be spelled in
an id (free text, newlines, escapes, HTML) is refused at its line, so every id
is safe in a file name, a terminal and a junit testcase name. Case files are
found by ``harness.discovery`` (a folder that cannot be walked is a problem,
not a silently smaller suite; the suite's size is bounded before any file is
read) and read through ``harness.userfile`` (regular files of at most 1 MiB).
A run keeps only an index of the cases and rebuilds them a file at a time
(``harness.suite``, with ``iter_file``).
"""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from pydantic import ValidationError

from harness import ops
from harness.backends import registry
from harness.casemodel import (COMMON_KEYS, ID_MAX, ID_PATTERN, Case, CaseFields, Expect, Fill,  # noqa: F401 - the
                               Tolerance, data_model, fields_model)                                # loader's model
from harness.memory import Budget
from harness.discovery import suite_files
from harness.userfile import read_text
from harness.yamlsrc import Located, Problem, ProblemsError, load_yaml

MAX_MATRIX_POINTS = 10_000
MAX_CASES = 20_000           # per suite (~40× the shipped one): building a case costs ~0.3 ms, so validation stays
                             # within seconds; beyond this it is a mistake, not a test plan
GIB = 1 << 30
_ID_LABEL = re.compile(r"[A-Za-z0-9_.,=:+\-\[\]]*")   # what a matrix value may contribute to an id


def _format_value(value: Any) -> str:
    if isinstance(value, list):
        return "x".join(_format_value(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _suggest(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_TYPE_TAGS = {"int", "str", "bool", "float", "list", "dict", "none"}


def _is_type_tag(part: str) -> bool:
    """pydantic puts union branches in error locations ('int', 'list[int]', "literal['same','valid']")."""
    return part in _TYPE_TAGS or "[" in part or part.startswith("function-")


def _pydantic_problems(exc: ValidationError, file: str, line_of, known: set[str]) -> list[Problem]:
    """pydantic errors -> problems, one per field (a Union's branches merged into one message)."""
    messages: dict[tuple, list[str]] = {}
    for err in exc.errors():
        loc = tuple(err["loc"])
        # Drop pydantic's union-branch tags ('int', 'list[int]', "literal['same','valid']").
        path = tuple(p for p in loc if isinstance(p, int) or not _is_type_tag(str(p)))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field" + _suggest(str(loc[-1]), known)
        elif err["type"] == "missing":
            msg = "required field is missing"
        found = messages.setdefault(path, [])
        if msg not in found:
            found.append(msg)
    problems = []
    for path, found in messages.items():
        name = ".".join(str(p) for p in path[:1]) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                                                          for p in path[1:])
        merged = found[0] + "".join(" or " + m.removeprefix("Input should be ") for m in found[1:])
        problems.append(Problem(file, line_of(path), name or "case", merged))
    return problems


#: For other loaders of the suite's files (``harness.claims``): the same messages for the same mistakes.
suggest, pydantic_problems = _suggest, _pydantic_problems


def _matrix_size(raw) -> int:
    """How many cases a raw case expands to (1 when its matrix is malformed: reported later)."""
    matrix = raw.get("matrix") if isinstance(raw, dict) else None
    size = 1
    if isinstance(matrix, dict):
        for values in matrix.values():
            size *= len(values) if isinstance(values, list) and values else 1
    return size


def _expand(raw: dict, file: str, located: Located, buckets: dict, path: tuple, problems: list[Problem]):
    """Yield (case dict, id suffix, line overrides) for each matrix point."""
    matrix = raw.get("matrix")
    if matrix is None:
        yield raw, "", {}
        return
    if not isinstance(matrix, dict) or not matrix:
        problems.append(Problem(file, located.line_of(path + ("matrix",)), "matrix",
                                "matrix must be a mapping of field -> list of values"))
        return
    axes, total = [], 1
    for key, values in matrix.items():
        if key in ("id", "matrix") or not isinstance(values, list) or not values:
            problems.append(Problem(file, located.line_of(path + ("matrix", key)), f"matrix.{key}",
                                    "each matrix entry must be a non-empty list of values for a case field"))
            return
        axes.append((key, values))
        total *= len(values)
    if total > MAX_MATRIX_POINTS:
        problems.append(Problem(file, located.line_of(path + ("matrix",)), "matrix",
                                f"expands to {total} cases; the limit is {MAX_MATRIX_POINTS}"))
        return
    unsafe = [(key, i, value) for key, values in axes for i, value in enumerate(values)
              if not _ID_LABEL.fullmatch(_format_value(value))]
    for key, i, value in unsafe:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:30] + f"…({len(repr(value))} characters)"
        problems.append(Problem(file, located.line_of(path + ("matrix", key, i)), f"matrix.{key}[{i}]",
                                f"{shown} cannot be part of a case id (ids use letters, digits and _.,=:+-[] "
                                "only); sweep this field in separate cases with their own ids"))
    if unsafe:
        return
    for point in itertools.product(*[range(len(v)) for _, v in axes]):
        case = {k: v for k, v in raw.items() if k != "matrix"}
        lines, labels = {}, []
        for (key, values), index in zip(axes, point):
            case[key] = values[index]
            lines.update(_lines_under(buckets, path + ("matrix", key, index), (key,)))
            labels.append(f"{key}={_format_value(values[index])}")
        yield case, "[" + ",".join(labels) + "]", lines


def load_file(path: Path, display: Optional[str] = None, memory_budget: Optional[Budget] = None,
              max_cases: int = MAX_CASES, text: Optional[str] = None) -> list[Case]:
    """Load one case file; raise ``ProblemsError`` listing every problem. A claim file (top-level
    ``claims:``, no ``cases:``) has no cases: ``harness.claims`` reads it. ``text``: the file's, if read."""
    problems: list[Problem] = []
    out = list(iter_file(path, display, memory_budget, max_cases, problems, text))
    if problems:
        raise ProblemsError(problems)
    return out


def iter_file(path: Path, display: Optional[str] = None, memory_budget: Optional[Budget] = None,
              max_cases: int = MAX_CASES, problems: Optional[list[Problem]] = None,
              text: Optional[str] = None) -> Iterator[Case]:
    """The valid cases of one file as they are built, the problems of the others added to ``problems``; a
    problem that stops the reading (the document, ``op``, ``cases``, the size) raises ``ProblemsError``."""
    file = display or str(path)
    located = load_yaml(read_text(path, file) if text is None else text, file)
    doc = located.value
    problems = [] if problems is None else problems
    if isinstance(doc, dict) and "claims" in doc and "cases" not in doc:
        return
    if not isinstance(doc, dict):
        raise ProblemsError([Problem(file, 1, "document", "a case file is a mapping with 'op' and 'cases'")])
    for key in doc:
        if key not in ("op", "defaults", "cases"):
            problems.append(Problem(file, located.line_of((key,)), str(key),
                                    "unknown top-level field" + _suggest(str(key), {"op", "defaults", "cases"})))
    op_name = doc.get("op")
    if not isinstance(op_name, str) or op_name not in ops.OPS:
        problems.append(Problem(file, located.line_of(("op",)), "op",
                                f"unknown or missing operator {op_name!r}; known: {', '.join(ops.OPS)}"))
        raise ProblemsError(problems)
    op = ops.get(op_name)
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(Problem(file, located.line_of(("defaults",)), "defaults", "defaults must be a mapping"))
        defaults = {}
    cases_raw = doc.get("cases")
    if not isinstance(cases_raw, list) or not cases_raw:
        problems.append(Problem(file, located.line_of(("cases",)), "cases", "cases must be a non-empty list"))
        raise ProblemsError(problems)

    planned = sum(_matrix_size(raw) for raw in cases_raw)
    if planned > max_cases:   # refuse before building anything: 10^4 × 10^4 must fail in milliseconds
        problems.append(Problem(file, located.line_of(("cases",)), "cases",
                                f"the file expands to {planned} cases; the suite limit is {MAX_CASES}"))
        raise ProblemsError(problems)
    built = 0
    buckets = _bucket_lines(located)
    for index, raw in enumerate(cases_raw):
        path = ("cases", index)
        if not isinstance(raw, dict):
            problems.append(Problem(file, located.line_of(path), f"cases[{index}]", "a case is a mapping"))
            continue
        merged = {**defaults, **raw}
        base_lines = {**_lines_under(buckets, ("defaults",)), **_lines_under(buckets, path)}
        for case_raw, suffix, matrix_lines in _expand(merged, file, located, buckets, path, problems):
            if built >= max_cases:
                problems.append(Problem(file, located.line_of(path), "cases",
                                        f"the suite expands to more than {max_cases} cases"))
                raise ProblemsError(problems)
            lines = {**base_lines, **matrix_lines}
            case = _build_case(case_raw, suffix, op, file, located.line_of(path), lines, problems)
            if case is not None and memory_budget is not None:
                need = memory_budget.need(op, case.params, case.dtype)
                if need > memory_budget.limit:
                    problems.append(Problem(file, case.lines.get(("input",), case.line), "input",
                                            f"this case needs ~{need / GIB:.3g} GiB, the budget is "
                                            f"{memory_budget.limit / GIB:.3g} GiB (--max-memory)"))
                    continue
            if case is not None:
                built += 1
                yield case


def _lines_under(buckets: dict, prefix: tuple, replace: tuple = ()) -> dict[tuple, int]:
    """Lines of every path at or below ``prefix``, re-rooted at ``replace`` (the empty path dropped).

    ``buckets`` groups the document's lines by their first two path parts, so
    a file of many cases is indexed once, not scanned once per case.
    """
    n, out, shared = len(prefix), {}, buckets[None]
    for p, line in buckets.get(prefix[:2], ()):
        if p[:n] == prefix and (rest := replace + p[n:]):
            out[shared.setdefault(rest, rest)] = line
    return out


def _bucket_lines(located: Located) -> dict:
    """The document's lines by the first one and two parts of their paths; under None, one tuple per re-rooted
    path (``("stride",)``, ``("data", "seed")`` recur in every case), shared by the file's ``Case.lines``."""
    buckets: dict = {None: {}}
    for path, line in located.lines.items():
        buckets.setdefault(path[:2], []).append((path, line))
        if len(path) >= 2:
            buckets.setdefault(path[:1], []).append((path, line))
    return buckets


def _build_case(raw, suffix, op, file, line, lines, problems) -> Optional[Case]:
    known = COMMON_KEYS | set(op.Params.model_fields)

    def line_of(path):
        path = tuple(path)
        while path and path not in lines:
            path = path[:-1]
        return lines.get(path, line) if path else line

    common_raw = {k: v for k, v in raw.items() if k in CaseFields.model_fields}
    op_raw = {k: v for k, v in raw.items() if k not in CaseFields.model_fields and k != "matrix"}
    found = []
    try:
        common = fields_model(op.name).model_validate(common_raw)
    except ValidationError as exc:
        found += _pydantic_problems(exc, file, line_of, known)
        common = None
    try:
        params = op.Params.model_validate(op_raw)
    except ValidationError as exc:
        found += _pydantic_problems(exc, file, line_of, known)
        params = None
    if found:
        problems.extend(found)
        return None
    if common.expect and common.expect.error and common.expect.shape is not None:
        problems.append(Problem(file, line_of(("expect",)), "expect",
                                "give expect.shape or expect.error, not both"))
        return None
    for index, selector in enumerate(common.backends or []):
        if not _backend_selector_known(selector):
            problems.append(Problem(file, line_of(("backends", index)), f"backends[{index}]",
                                    f"unknown backend {selector!r}; known: {', '.join(registry())}"))
            return None
    if len(common.id + suffix) > ID_MAX:
        problems.append(Problem(file, line_of(("matrix",)) if suffix else line, "id",
                                f"the expanded id {common.id + suffix[:40]!r}… is {len(common.id + suffix)} "
                                f"characters; the limit is {ID_MAX}"))
        return None
    case = Case(id=common.id + suffix, op=op.name, file=file, line=line, common=common,
                params=params, raw_params=op_raw, lines=lines)
    try:
        case.resolved = op.resolve(params)
    except ops.InvalidCall as exc:
        case.invalid_reason = exc.reason
        if not case.expects_error:
            problems.append(Problem(file, line_of((exc.field,)), exc.field,
                                    f"{exc.reason} (a case that must be rejected says expect: {{error: true}})"))
            return None
    if case.resolved is not None and case.expects_error:
        problems.append(Problem(file, line_of(("expect", "error")), "expect.error",
                                "the canonical semantics accepts this call, so it cannot expect an error"))
        return None
    want = common.expect.shape if common.expect else None
    if want is not None and case.resolved is not None and tuple(want) != case.resolved.output_shape:
        problems.append(Problem(file, line_of(("expect", "shape")), "expect.shape",
                                f"{want} differs from the canonical output shape {list(case.resolved.output_shape)}"))
        return None
    return case


def build_case(fields: dict, op_name: str, file: str = "<generated>", line: int = 1) -> Case:
    """One case from its fields as a case file writes them (no ``matrix``), for tools that generate cases
    (``conform hunt``); raises ``ProblemsError`` with what is wrong, like a case file would."""
    problems: list[Problem] = []
    case = _build_case(fields, "", ops.get(op_name), file, line, {}, problems)
    if case is None:
        raise ProblemsError(problems)
    return case


def _backend_selector_known(selector: str) -> bool:
    return any(b == selector or b.split(".")[0] == selector for b in registry())


def load_suite(paths: list[str], memory_budget: Union[Budget, int, None] = None,
               keep: Optional[Callable[[Path, str, list[Case]], list]] = None) -> list:
    """Load every case file; check ids are unique and sizes sane; raise ``ProblemsError`` with all problems.

    ``memory_budget`` (a ``Budget``, or bytes for a run of every backend) refuses cases whose estimated
    peak memory is larger (``harness.memory``), at validation time, before any allocation. ``keep(path,
    text, cases)``: what is kept of each file's cases (their ``id``, ``file`` and ``line`` at least; default
    the cases themselves; ``harness.suite.index_suite`` keeps a compact entry each).
    """
    if isinstance(memory_budget, int):
        memory_budget = Budget.for_backends(memory_budget)
    problems: list[Problem] = []
    cases: list = []
    files = suite_files(paths, problems)
    for path in files:
        try:
            text = read_text(path, str(path))
            loaded = load_file(path, memory_budget=memory_budget, max_cases=MAX_CASES - len(cases), text=text)
            cases += keep(path, text, loaded) if keep is not None else loaded
        except ProblemsError as exc:
            problems += exc.problems
    seen: dict[str, Any] = {}
    for case in cases:
        if case.id in seen:
            first = seen[case.id]
            problems.append(Problem(case.file, case.line, "id",
                                    f"duplicate case id {case.id!r} (first at {first.file}:{first.line})"))
        else:
            seen[case.id] = case
    if not files and not problems:
        problems.append(Problem(",".join(paths) or ".", 0, "path", "no case files found"))
    if problems:
        raise ProblemsError(problems)
    return cases
