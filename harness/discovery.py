"""Which files make a suite: the case files under the paths given, checked before any is read.

``discover`` walks the paths (files or folders; ``known_divergences.yaml``
and ``*.registry.yaml``, the entries ``conform hunt`` proposes, are registries, not case files). ``suite_files`` then bounds the suite
with ``stat`` alone: a path that cannot be reached (missing, a symlink loop,
no permission) is a problem at its name, and the files together may hold at
most ``MAX_SUITE_BYTES`` (each one alone at most ``MAX_SOURCE_BYTES``,
``harness.userfile``), so a folder of many large files is refused before
minutes of parsing.
"""

from __future__ import annotations

import errno
import fnmatch
import os
from pathlib import Path
from typing import Optional

from harness.userfile import MAX_SOURCE_BYTES, MIB
from harness.yamlsrc import Problem, ProblemsError

MAX_SUITE_BYTES = 8 * MIB     # all case files of one suite together (~100× the shipped suite)


def discover(paths: list[str], problems: Optional[list[Problem]] = None) -> list[Path]:
    """Case files under ``paths`` (files or folders), sorted; registry files excluded.

    A folder that cannot be listed (permissions, a symlink loop, a path too
    long) is appended to ``problems`` (raised as ``ProblemsError`` when no list
    is given): a suite that silently lost a folder would pass for the wrong reason.
    """
    found: list[Problem] = []
    files: list[Path] = []

    def unreadable(exc: OSError) -> None:
        found.append(Problem(exc.filename or "?", 0, "path", f"cannot list this folder: {exc.strerror or exc}"))

    for p in map(Path, paths):
        if not p.is_dir():
            files.append(p)
            continue
        below = []
        for folder, dirs, names in os.walk(p, onerror=unreadable):
            dirs.sort()
            below += [Path(folder, n) for n in names
                      if fnmatch.fnmatchcase(n, "*.y*ml") and n != "known_divergences.yaml"
                      and not n.endswith(".registry.yaml")]
        files += sorted(below)
    if problems is None and found:
        raise ProblemsError(found)
    (problems if problems is not None else []).extend(found)
    return files


def suite_files(paths: list[str], problems: list[Problem]) -> list[Path]:
    """The case files of ``paths`` to read, in order; what cannot be read or is too much goes to ``problems``."""
    files, total = [], 0
    for path in discover(paths, problems):
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            if exc.errno == errno.ENOENT and not os.path.islink(path):
                problems.append(Problem(str(path), 0, "path", "no such file or directory"))
            else:   # a symlink loop, a dangling link, no permission: say which
                problems.append(Problem(str(path), 1, "file", f"cannot read: {exc.strerror or exc}"))
            continue
        total += size if size <= MAX_SOURCE_BYTES else 0   # a file over its own limit is refused when read
        if total > MAX_SUITE_BYTES:   # checked before reading: the bound holds however many files there are
            problems.append(Problem(str(path), 1, "file", f"the case files up to this one total "
                                                          f"{total / MIB:.1f} MiB; the limit for one suite is "
                                                          f"{MAX_SUITE_BYTES // MIB} MiB"))
            break
        files.append(path)
    return files
