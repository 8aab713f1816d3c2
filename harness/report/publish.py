"""Publishing the report set: report.json, report.html, junit.xml, summary.md and repro/ change as one.

Note: how the set switches
--------------------------
Every report set lives in a *generation* folder, ``OUT/.conform/gen-*``.
``OUT/.conform/current`` is a symbolic link to the published generation, and
each name of the set in ``OUT`` is a symbolic link through it::

    OUT/report.json -> .conform/current/report.json
    OUT/repro       -> .conform/current/repro
    OUT/.conform/current -> gen-20260101T120000-4242

A run (or ``conform report``) writes a new generation from scratch: the
reproducers while the run goes, then every report streamed straight into its
file there (a run's results are read from its journal as they are written,
Note [Results on disk] in ``harness.results``) and ``fsync``'d. Only then is ``current`` replaced, by one
``rename(2)`` of a new symbolic link over it, which is atomic: a reader
resolving any name sees the old generation or the new one, never a mix.

Why a generation and a link switch rather than renaming the files into place
one by one: a sequence of renames has windows in which some names are new
and some old, and SIGKILL or a power cut can fall in them; nothing can block
SIGKILL. With one rename every failure lands on one side of it:

* encoding errors, ENOSPC, EFBIG (``ulimit -f``), SIGINT/SIGTERM while
  writing: the new generation is incomplete and never becomes visible; it is
  removed at once (or, after SIGKILL, by the next command's ``recover``), so
  no temporary file outlives its writer;
* any failure after the switch: the new set is complete and visible; what
  remains of the old generation is retired by the next command.

SIGINT/SIGTERM are deferred (``harness.interrupts.deferred``: handlers swapped for a recorder,
then re-raised) while the links are switched and the old generation retired,
so a Ctrl-C cannot leave that bookkeeping half done. ``signal.pthread_sigmask``
is not enough for that: a signal blocked in the main thread is delivered to
any other thread, and CPython then runs the handler in the main thread anyway.

Ownership inside a generation: just before the switch the generation's
inventory (``.inventory.json``: every path conform wrote there) is recorded.
Retiring a generation deletes only inventoried files; anything else (a note a
person saved under ``OUT/repro/``) is moved into the new generation at the
same path, or, if that path is taken, left where it was with a warning.

Folders written before generations existed (``report.json`` and ``repro/``
as plain entries of ``OUT``) are migrated on first use: ``current`` is
pointed at a new ``gen-legacy`` first, then each plain entry is moved into it
and replaced by its link, so every name stays readable at every step; its
inventory is ``repro/<case>/<backend>/{repro.py,inputs.npz,diff.png}`` and
the report files, which is what those versions wrote.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from harness.interrupts import deferred
from harness.outdir import GENERATIONS
from harness.report.gradients import result_key
from harness.results import Mapped

SET = ("report.json", "report.html", "junit.xml", "summary.md", "repro")
CURRENT = "current"
INVENTORY = ".inventory.json"
STAGING = ".staging"          # present while a generation is being written; never in a published one
_REPRO_FILES = ("repro.py", "inputs.npz", "diff.png")


class PublishError(Exception):
    """The new set could not be written; the previous set is unchanged (exit 2)."""


# ---------------------------------------------------------------- small file-system steps

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _new_text(path: Path) -> Iterator[io.TextIOWrapper]:
    """A new file (never an existing one) written as UTF-8 text, ``fsync``'d before it is closed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with open(fd, "w", encoding="utf-8", newline="", buffering=1 << 16) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)      # the old generation's files are replaced, never modified: sharing is safe
    except OSError:
        shutil.copy2(source, target)


def _symlink(target: str, at: Path) -> None:
    """Point ``at`` to ``target`` atomically (a new link renamed over the old name)."""
    tmp = at.with_name(f"{at.name}.tmp-{os.getpid()}")
    if os.path.lexists(tmp):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, at)


# ---------------------------------------------------------------- generations

def current(out: Path):
    """The published generation folder of ``out``, or None."""
    link = Path(out) / GENERATIONS / CURRENT
    if not link.is_symlink():
        return None
    target = link.parent / os.readlink(link)
    return target if target.is_dir() else None


def inventory(generation: Path) -> set[str]:
    """Paths (relative, POSIX) conform wrote in ``generation``."""
    try:
        listed = json.loads((generation / INVENTORY).read_text(encoding="utf-8"))
        if isinstance(listed, list):
            return {p for p in listed if isinstance(p, str)}
    except (OSError, ValueError):
        pass
    found = {name for name in SET[:4] if (generation / name).is_file()}   # a legacy folder: what it wrote
    found |= {p.relative_to(generation).as_posix() for name in _REPRO_FILES
              for p in generation.glob(f"repro/*/*/{name}")}
    return found


def _files(folder: Path) -> list[str]:
    return sorted(Path(root, name).relative_to(folder).as_posix()
                  for root, _, names in os.walk(folder) for name in names)


def _retire(old: Path, new) -> list[str]:
    """Delete what conform wrote in ``old``; move anything else into ``new``. Warnings for what stays."""
    listed = inventory(old) | {INVENTORY, STAGING}
    warnings = []
    for rel in _files(old):
        if rel in listed:
            continue
        target = None if new is None else new / rel
        if target is not None and not os.path.lexists(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(old / rel, target)
        else:
            warnings.append(f"kept {old / rel}: not written by conform")
    for rel in sorted(listed, key=lambda p: p != INVENTORY):    # the inventory last: it says what is ours
        if os.path.lexists(old / rel) and not (old / rel).is_dir():
            (old / rel).unlink()
    for root, dirs, _ in os.walk(old, topdown=False):
        for name in dirs:
            try:
                os.rmdir(Path(root, name))
            except OSError:
                pass
    try:
        old.rmdir()
    except OSError:
        pass
    return warnings


def _migrate_legacy(out: Path) -> None:
    """Plain report files of an earlier conform version become the published generation (module Note)."""
    plain = [n for n in SET if os.path.lexists(out / n) and not (out / n).is_symlink()]
    if not plain:
        return
    root = out / GENERATIONS
    legacy = current(out)
    if legacy is None:
        legacy = root / "gen-legacy"
        legacy.mkdir(parents=True, exist_ok=True)
        _symlink(legacy.name, root / CURRENT)
    for name in plain:
        if os.path.lexists(legacy / name):
            continue     # the generation has its own (a rename interrupted before its link): keep the plain one
        os.rename(out / name, legacy / name)
        _symlink(f"{GENERATIONS}/{CURRENT}/{name}", out / name)


def recover(out: Path) -> list[str]:
    """Finish what an interrupted earlier command left (call with the folder's lock held)."""
    root = Path(out) / GENERATIONS
    with deferred():
        _migrate_legacy(Path(out))
        if not root.is_dir():
            return []
        live = current(out)
        warnings = []
        for entry in root.iterdir():
            if entry.is_symlink() and entry.name.startswith(f"{CURRENT}.tmp-"):
                entry.unlink()
            elif entry.is_dir() and not entry.is_symlink() and entry != live:
                if (entry / STAGING).exists():
                    shutil.rmtree(entry)             # never published: nobody could see it
                else:
                    warnings += _retire(entry, live)
        return warnings


class Generation:
    """A report set being written; ``publish()`` makes it the visible set of ``out`` in one rename."""

    def __init__(self, out: Path):
        self.out = Path(out)
        try:
            self._begin()
        except OSError as exc:
            raise PublishError(f"--out {out}: cannot prepare the reports: {exc}") from None

    def _begin(self) -> None:
        """Finish what an earlier command left, then create this generation (still staging)."""
        self.warnings = recover(self.out)
        root = self.out / GENERATIONS
        root.mkdir(exist_ok=True)
        self.previous = current(self.out)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.path = root / f"gen-{stamp}-{os.getpid()}"
        n = 1
        while os.path.lexists(self.path):
            n += 1
            self.path = root / f"gen-{stamp}-{os.getpid()}-{n}"
        self.path.mkdir()
        (self.path / STAGING).touch()
        (self.path / "repro").mkdir()      # always part of the set, empty when nothing failed
        self.published = False

    def __enter__(self) -> "Generation":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if not self.published:
            self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def carry(self, rel: str) -> bool:
        """Share the previous generation's files under ``rel`` (a file or folder) that conform wrote."""
        if self.previous is None:
            return False
        listed = inventory(self.previous)
        found = [p for p in listed if p == rel or p.startswith(rel.rstrip("/") + "/")]
        for path in found:
            if not os.path.lexists(self.path / path):
                _link_or_copy(self.previous / path, self.path / path)
        return bool(found)

    def carry_reproducers(self, results: Sequence[dict]) -> set[tuple]:
        """``--resume``: the kept results' reproducers come along from the previous generation.

        A result whose reproducer is gone (or whose link is not a plain ``repro/...`` path) loses the link:
        returns the keys of those results, so ``without_links`` can drop it from records read lazily.
        """
        lost = set()
        for record in results:
            rel = record.get("repro")
            if not isinstance(rel, str) or os.path.lexists(self.path / rel):
                continue
            parts = rel.split("/")
            if len(parts) < 3 or parts[0] != "repro" or any(p in ("", ".", "..") for p in parts):
                continue
            if not self.carry("/".join(parts[:-1])):
                record.pop("repro", None)
                record.pop("heatmap", None)
                lost.add(result_key(record))
        return lost

    def write_text(self, name: str, writer: Callable[[io.TextIOWrapper], None]) -> None:
        """Write the new file ``name`` by ``writer(handle)`` (streamed as UTF-8, then ``fsync``'d)."""
        with _new_text(self.path / name) as handle:
            writer(handle)

    def publish(self) -> list[str]:
        """Switch ``out``'s set to this generation; returns warnings (files kept that conform did not write)."""
        names = sorted(p.name for p in self.path.iterdir() if p.name in SET)
        listed = [p for p in _files(self.path) if p != STAGING]
        _write_new(self.path / INVENTORY, json.dumps(listed).encode("utf-8"))
        root = self.out / GENERATIONS
        with deferred():
            for name in names:     # links through `current`: they show the old set until the switch
                link, wanted = self.out / name, f"{GENERATIONS}/{CURRENT}/{name}"
                if not link.is_symlink() and os.path.lexists(link):
                    raise PublishError(f"{link} exists and was not written by conform; move it away")
                if not link.is_symlink() or os.readlink(link) != wanted:
                    _symlink(wanted, link)
            (self.path / STAGING).unlink()
            _fsync_dir(self.path)
            _symlink(self.path.name, root / CURRENT)          # the switch
            _fsync_dir(root)
            self.published = True
            for name in SET:       # names the old set had and this one has not
                link = self.out / name
                if name not in names and link.is_symlink() and os.readlink(link).startswith(f"{GENERATIONS}/"):
                    link.unlink()
            _fsync_dir(self.out)
            warnings = self.warnings
            if self.previous is not None and self.previous != self.path:
                warnings = warnings + _retire(self.previous, self.path)
        return warnings


def without_links(results: Sequence[dict], lost: set[tuple]) -> Sequence[dict]:
    """``results`` without the reproducer links of the results ``lost`` (``Generation.carry_reproducers``)."""
    if not lost or isinstance(results, list):
        return results

    def drop(record: dict) -> dict:
        if result_key(record) in lost:
            record.pop("repro", None)
            record.pop("heatmap", None)
        return record
    return Mapped(results, drop)


def write_set(gen: Generation, report: dict, base: Path, html_out: Path) -> None:
    """report.json, report.html, junit.xml and summary.md of ``report``, each streamed into ``gen``.

    ``base``: folder holding the report's repro/ (heatmaps are read from it); ``html_out``: the folder the
    page will be seen in (its links to repro/ are relative to it).
    """
    from harness.report import html, json_report, junit, markdown
    gen.write_text("report.json", lambda handle: json_report.write_to(handle, report))
    gen.write_text("report.html", lambda handle: html.write_to(handle, report, base, html_out))
    gen.write_text("junit.xml", lambda handle: junit.write_to(handle, report))
    gen.write_text("summary.md", lambda handle: handle.write(markdown.render(report)))


def publish_reports(gen: Generation, report: dict, base: Path, html_out: Path) -> list[str]:
    """Write every report into ``gen`` (``write_set``) and switch to it; returns warnings.

    Raises ``PublishError`` saying whether the old set is unchanged (any failure before the switch) or the new
    set is complete and only tidying up failed.
    """
    try:
        write_set(gen, report, base, html_out)
        return gen.publish()
    except (OSError, UnicodeError, PublishError) as exc:
        if gen.published:
            raise PublishError(f"the reports in {gen.out} are complete, but tidying up failed: {exc}") from None
        raise PublishError(f"cannot write the reports into {gen.out}: {exc}; "
                           "the previous reports there are unchanged") from None
