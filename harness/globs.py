"""Case-id globs, shared by ``-k`` and the known-divergence registry.

Only ``*`` (any run of characters) and ``?`` (one character) are special:
``[`` and ``]`` are literal, because matrix case ids contain them
(``sweep[stride=2,dtype=float16]``); ``fnmatch`` would read them as a
character class and silently match other cases.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern:
    """A regex that matches a whole id against ``pattern`` (use ``.match``)."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + r"\Z", re.DOTALL)


def select_id(case_id: str, patterns: list[str]) -> bool:
    """``-k`` semantics: the id matches any pattern, as a whole-id glob or as a plain substring."""
    return any(p in case_id or compile_glob(p).match(case_id) for p in patterns)
