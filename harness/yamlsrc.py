"""YAML loading that remembers where every value came from.

PyYAML's safe composer gives us nodes with marks; we construct plain Python
values ourselves so that (1) every mapping key and sequence item keeps its line
number, (2) duplicate keys are reported instead of silently overwritten, and
(3) any tag outside the YAML core schema (``!!python/object`` and friends) is
refused with a clear message instead of being constructed.

Hostile documents are problems too, each with its line: characters YAML
forbids in a stream (NUL, ESC, C1 controls, U+FFFE; write them as escapes in a
double-quoted string if they are meant), scalars a core tag cannot construct
(``!!int "abc"``, integers of more than 4300 digits), nesting deeper than
``MAX_DEPTH`` (checked while composing, before any recursion can overflow) and
documents of more than ``MAX_VALUES`` values.

Note [Two parsers]
------------------
libyaml (PyYAML's C scanner and parser) reads a case file about 8x faster
than the pure-Python one, and a run reads every file twice (validation, then
the run rebuilding its cases: ``harness.cases``). Its events carry the same
marks, so our composer (with the depth guard) and constructor run over them
unchanged and every line is the same. Its error messages are not PyYAML's,
though, and it does not refuse every character PyYAML does: a text with a
character the pure reader forbids, or one libyaml fails on in any way, is read
again by the pure loader, whose message (or, should the two ever disagree,
whose value) is the one given. Without libyaml the pure loader reads
everything.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from harness.text import printable


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a case file, printed as ``file:line: field: message``."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        # Keys, values and file names quoted here come from the user: never raw escapes on a terminal.
        return printable(f"{self.file}:{self.line}: {self.field}: {self.message}")


class ProblemsError(Exception):
    """Raised with every problem found; the CLI prints them and exits 2."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Located:
    """A loaded document plus the line of every path inside it.

    Paths are tuples of mapping keys and sequence indices, e.g.
    ``("cases", 2, "stride")``; the empty tuple is the document itself.
    """

    value: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, path: tuple) -> int:
        """The line of ``path``, or of its closest located ancestor."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


_CORE_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq")
}


#: Nesting levels one document may have; case files need about eight.
MAX_DEPTH = 64


class _DepthComposer(yaml.composer.Composer):
    """PyYAML's composer, refusing nesting beyond ``MAX_DEPTH`` (with the line) before recursing."""

    def __init__(self):
        super().__init__()
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nesting is deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _DepthComposer,
              yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """The pure-Python safe loader with the depth guard: the reference for every message."""

    def __init__(self, stream):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _DepthComposer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


try:   # libyaml's scanner and parser (PyYAML built with it); the composer above stays ours, over its events
    from yaml.cyaml import CParser
except ImportError:   # pragma: no cover - a PyYAML without libyaml: the pure loader reads everything
    CParser = None

if CParser is not None:
    class _CLoader(_DepthComposer, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's events (marks with lines, as the pure parser's), composed by ``_DepthComposer``."""

        def __init__(self, stream):
            CParser.__init__(self, stream)
            _DepthComposer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)


def _reader_problem(exc: yaml.reader.ReaderError, text: str, file: str) -> Problem:
    """A character YAML does not allow in a stream, at its line and column."""
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    return Problem(file, line, "yaml", f"character U+{exc.character:04X} at column {column} is not allowed in "
                                       "YAML (control characters and U+FFFE/U+FFFF must be written as "
                                       "escapes inside a double-quoted string)")


def _fast_node(text: str):
    """The document's node through libyaml, or None when there is no libyaml or anything is wrong with the
    text (the pure loader then reads it again and says what, in its own words: Note [Two parsers])."""
    if CParser is None or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return None
    loader = _CLoader(text)
    try:
        return loader, loader.get_single_node()
    except Exception:   # noqa: BLE001 - libyaml's errors are re-derived by the pure loader below
        return None
    finally:
        loader.dispose()


def _pure_node(text: str, file: str):
    try:
        loader = _Loader(text)   # the reader checks every character here, before parsing
    except yaml.reader.ReaderError as exc:
        raise ProblemsError([_reader_problem(exc, text, file)]) from None
    try:
        return loader, loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        context = f"{exc.context}, " if exc.context else ""
        raise ProblemsError([Problem(file, line, "yaml", f"{context}{exc.problem or exc}")]) from None
    except yaml.reader.ReaderError as exc:
        raise ProblemsError([_reader_problem(exc, text, file)]) from None
    except yaml.YAMLError as exc:
        raise ProblemsError([Problem(file, 1, "yaml", str(exc))]) from None
    finally:
        loader.dispose()


def load_yaml(text: str, file: str) -> Located:
    """Parse ``text``; raise ``ProblemsError`` with file:line on any problem."""
    loader, node = _fast_node(text) or _pure_node(text, file)
    located = Located(None)
    problems: list[Problem] = []
    if node is not None:
        located.value = _construct(node, (), located.lines, problems, file, loader)
    if problems:
        raise ProblemsError(problems)
    return located


def _path_name(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"


_BUILDING = object()   # marks a container whose own alias would make it contain itself

#: Values one document may construct; beyond this it is an alias bomb or simply absurd.
MAX_VALUES = 200_000


def _construct(node, path, lines, problems, file, loader, seen=None):
    """Build the value of ``node``; an alias reuses the value built for its anchor.

    ``lines[path]`` is the line of the *key* for mapping values (set by the
    caller) and of the node itself otherwise.
    """
    seen = {} if seen is None else seen
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:  # an alias: share, never re-walk (no exponential blow-up)
        if seen[id(node)] is _BUILDING:
            problems.append(Problem(file, lines[path], _path_name(path), "recursive alias (refers to itself)"))
            return None
        return seen[id(node)]
    if len(seen) >= MAX_VALUES:
        raise ProblemsError([Problem(file, lines[path], _path_name(path),
                                     f"the document holds more than {MAX_VALUES} values")])
    if node.tag not in _CORE_TAGS:
        problems.append(Problem(file, lines[path], _path_name(path),
                                f"tag {node.tag!r} is not allowed in case files"))
        seen[id(node)] = None
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        seen[id(node)] = _BUILDING
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag not in _CORE_TAGS:
                problems.append(Problem(file, key_line, _path_name(path),
                                        f"tag {key_node.tag!r} is not allowed in case files"))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(file, key_line, _path_name(path), "mapping keys must be plain scalars"))
                continue
            key = _scalar(key_node, path, key_line, problems, file, loader)
            if key in out:
                problems.append(Problem(file, key_line, _path_name(path + (key,)),
                                        f"duplicate key {key!r} (first on line {lines[path + (key,)]})"))
                continue
            lines[path + (key,)] = key_line
            out[key] = _construct(value_node, path + (key,), lines, problems, file, loader, seen)
        seen[id(node)] = out
        return out
    if isinstance(node, yaml.SequenceNode):
        seen[id(node)] = _BUILDING
        out_list = [_construct(item, path + (i,), lines, problems, file, loader, seen)
                    for i, item in enumerate(node.value)]
        seen[id(node)] = out_list
        return out_list
    value = _scalar(node, path, lines[path], problems, file, loader)
    seen[id(node)] = value
    return value


_STR, _INT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")   # no leading zero: YAML 1.1 reads 012 as octal


def _scalar(node, path, line, problems, file, loader):
    try:
        # The two scalars a case file is mostly made of, as SafeConstructor builds them, without its dispatch.
        if node.tag == _STR:
            return node.value
        if node.tag == _INT and _DECIMAL.fullmatch(node.value):
            return int(node.value)
        return loader.construct_object(node)
    except yaml.YAMLError as exc:
        problems.append(Problem(file, line, _path_name(path), str(exc)))
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        # An explicit core tag on a scalar it cannot construct (!!int "abc", !!bool "maybe"), or an
        # integer beyond Python's 4300-digit string conversion limit.
        shown = node.value if len(node.value) <= 40 else f"{node.value[:20]}…({len(node.value)} characters)"
        kind = node.tag.rsplit(":", 1)[-1]
        why = f" (more than {sys.get_int_max_str_digits()} digits)" if "digits" in str(exc) else ""
        problems.append(Problem(file, line, _path_name(path), f"{shown!r} is not a valid {kind}{why}"))
    return None
