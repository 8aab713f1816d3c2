"""Text that is safe to show: case-supplied strings on a terminal or in a report.

Case files, framework error messages and report.json fields can carry control
characters, terminal escape sequences (``ESC [ 31 m``, the one-byte CSI
``U+009B``), bidirectional overrides and lone surrogates. Printed raw they
recolour or rewrite a terminal, hide text, or make a UTF-8 writer raise.
``safe_text`` replaces each such character with a visible Python-style escape
(``\\x1b``, ``\\u202e``, ``\\ud800``) and leaves everything else alone.
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL; bidi embeddings/overrides/isolates; lone surrogates;
# U+FFFE/U+FFFF (noncharacters that YAML and XML both forbid).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_UNSAFE_OR_NEWLINE = re.compile(_UNSAFE.pattern[:-1] + "\n\r]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return {0x0A: "\\n", 0x0D: "\\r"}.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe_text(text, newlines: bool = False) -> str:
    """``text`` (any value, via ``str``) with unsafe characters escaped.

    Tabs are kept; newlines are kept only when ``newlines`` is true (a
    multi-line field of a report), else shown as ``\\n`` (one terminal line).
    """
    text = text if isinstance(text, str) else str(text)
    pattern = _UNSAFE if newlines else _UNSAFE_OR_NEWLINE
    return pattern.sub(_escape, text)
