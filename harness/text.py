"""Text that is safe wherever conform shows it: report files, XML, Markdown, the terminal, error messages.

Strings in a report come from case files, registries and framework error
messages, so they can hold anything a Python ``str`` can: lone surrogates
(``"\\ud800"`` from a YAML escape), which no UTF-8 writer can encode;
control characters, which XML 1.0 cannot carry even escaped; and terminal
escape sequences (ESC, C1 controls such as CSI ``\\x9b``), which a terminal
obeys. Case-file problems (``file:line: field: message``) and usage errors
quote user input too and go through ``printable``. Two functions cover every sink:

* ``clean(value)`` maps a whole report (dicts, lists, strings) to one every
  UTF-8 writer can encode: a lone surrogate becomes U+FFFD. Control
  characters stay (JSON escapes them; the other sinks use ``printable``).
  Every reporter renders the cleaned report, so report.json, report.html,
  junit.xml, summary.md and the terminal agree.
* ``printable(text)`` is the one-line form for a terminal or Markdown:
  every control character (C0, DEL, C1), lone surrogate, line/paragraph
  separator and bidirectional override is written as a visible escape
  (``\\x1b``, ``\\u202e``), so no text can move the cursor, recolour the
  terminal, break a table row or reorder what a reader sees.

A generated ``repro.py`` is a sink too: ``python_literal`` writes values as
Python source that evaluates back to them, NaN and ±Inf included.
"""

from __future__ import annotations

import math
import pprint
import re

_SURROGATE = re.compile("[\ud800-\udfff]")
#: C0 and C1 controls, DEL, lone surrogates, U+2028/2029, bidi embeddings/overrides/isolates, BOM/U+FFFE/U+FFFF.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")


def clean(value):
    """``value`` with every lone surrogate in every string (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.get(code) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text, keep: str = "") -> str:
    """``text`` (any value, ``None`` as "") with unprintable characters written as visible escapes.

    ``keep``: characters to let through (e.g. ``"\\n\\t"`` for a multi-line block).
    """
    text = "" if text is None else str(text)
    return _UNPRINTABLE.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)


def python_literal(value) -> str:
    """Python source for a JSON-like value that evaluates back to it, NaN and ±Inf included.

    ``repr(float("inf"))`` is ``inf``, a NameError in a script; here it is ``float('inf')``.
    Finite values keep ``pprint``'s layout.
    """
    if not _has_nonfinite(value):
        return pprint.pformat(value, width=100, sort_dicts=False)
    if isinstance(value, float):
        return f"float({str(value)!r})"   # float('inf'), float('-inf'), float('nan')
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + "".join(f"{python_literal(v)}, " for v in value) + ")"
    return "[" + ", ".join(python_literal(v) for v in value) + "]"


def _has_nonfinite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nonfinite(v) for v in value)
    return False
