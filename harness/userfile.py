"""Reading a file a user handed to conform: regular files only, bounded, UTF-8, errors with a line.

Case files, the known-divergence registry and report.json are user input. A
FIFO named ``x.yaml`` would block ``open`` forever, a symlink to ``/dev/zero``
would be read without end, and a 50 MB file costs minutes of pure-Python YAML
parsing and GBs of memory before any rule could refuse it. So the file is
checked with ``stat`` before it is opened (regular file, size within the
limit), checked again with ``fstat`` on the open descriptor (it may have been
swapped in between), and read with a bounded read (it may grow meanwhile).

Every failure is a ``Problem`` (``file:line: file: message``), never an
exception from the operating system or the decoder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.yamlsrc import Problem, ProblemsError

MIB = 1 << 20
#: One case or registry file. The largest case file of the suite is ~26 KB; PyYAML
#: (pure Python, for line marks) parses ~0.3 MB/s, so 1 MiB stays within a few seconds.
MAX_SOURCE_BYTES = 1 * MIB

_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular(path: Path, file: str, max_bytes: int) -> int:
    """The size of ``path`` if it is a regular file (symlinks followed) within ``max_bytes``; else raise."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ProblemsError([Problem(file, 1, "file", f"cannot read: {exc.strerror or exc}")]) from None
    _refuse(info, file, max_bytes)
    return info.st_size


def _refuse(info: os.stat_result, file: str, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ProblemsError([Problem(file, 1, "file", f"is {_kind(info.st_mode)}, not a regular file; "
                                                      "only regular files are read")])
    if info.st_size > max_bytes:
        raise ProblemsError([Problem(file, 1, "file", f"is {info.st_size / MIB:.1f} MiB; the limit is "
                                                      f"{max_bytes / MIB:g} MiB")])


def read_text(path: Path, file: str, max_bytes: int = MAX_SOURCE_BYTES) -> str:
    """The UTF-8 text of ``path`` (a regular file of at most ``max_bytes``); raise ``ProblemsError``."""
    check_regular(path, file, max_bytes)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, open() does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ProblemsError([Problem(file, 1, "file", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        _refuse(os.fstat(fd), file, max_bytes)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ProblemsError([Problem(file, 1, "file", f"cannot read: {exc.strerror or exc}")]) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ProblemsError([Problem(file, 1, "file", f"grew beyond the limit of {max_bytes / MIB:g} MiB "
                                                      "while being read")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ProblemsError([Problem(file, line, "file", f"not UTF-8 text: byte 0x{data[exc.start]:02x} "
                                                         f"at column {column} ({exc.reason})")]) from None
