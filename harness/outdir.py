"""The output folder (``--out``): which folders conform may write into, what it owns there, and the lock.

A folder conform writes into carries a manifest, ``.conform-out.json``::

    {"schema": "conform.out/1", "created_by": "conform 0.1.0", "created": "...",
     "owned": ["junit.xml", "logs", "report.html", ...]}

``owned`` lists the top-level names conform has written there. conform
writes or replaces only those names (and its own ``.conform-out.*`` files and
``.conform/`` folder of report generations, see ``harness.report.publish``),
and deletes nothing else: a file a person put next to the reports survives
every run.

``check_writable`` refuses, before a run starts, a folder that could not be
created or written (under a file, read-only). ``claim`` decides whether a
folder may be used, in this order:

1. refused outright (exit 2): ``/``, a home folder, a folder that holds (or
   is one of) the case paths of the run or has case files (``*.yaml``) in it;
2. a missing or empty folder is created and marked;
3. a folder with a manifest is conform's; a name the run will write that
   exists but is not ``owned`` is refused (it is someone else's file);
4. a folder without a manifest whose every entry is a name conform writes
   (``report.json``, ``repro``, ``results.jsonl``, ``bench.json``, ... and the
   ``.report.json.XXXXXXXX`` temporaries older versions left after a kill) was
   written by an earlier conform: it is adopted (``reports/`` of ``make
   conform`` before the manifest existed; the screenshots and report-scale
   output this repository's tests put there do not prevent it). Any other
   non-empty folder is refused.

The lock: ``.conform-out.lock`` is held with ``fcntl.flock`` for the whole
command, so a second run, ``conform report`` or ``conform bench`` into the
same folder fails at once (exit 2) with the holder's pid, command line and
start time, which the holder writes into the lock file. The lock is released
by the kernel when the process ends, however it ends; the file stays (removing
a lock file races with the next locker).
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from harness import __version__
from harness.report import atomic_write

MANIFEST = ".conform-out.json"
LOCK = ".conform-out.lock"
GENERATIONS = ".conform"            # report generations (harness.report.publish)
SCHEMA = "conform.out/1"

#: Every top-level name some conform command writes (report set, journal, logs, bench).
KNOWN = frozenset({"report.json", "report.html", "junit.xml", "summary.md", "repro", "results.jsonl", "logs",
                   "bench.json", "throughput", GENERATIONS, "hunt.json", "hunt-journal.jsonl", "hunt-work"})
_OWN_FILES = frozenset({MANIFEST, LOCK})
#: What this repository's tests and benchmarks put in reports/ (screenshots, report-scale): no obstacle to adoption.
_TOOLING = frozenset({"screenshots", "report-scale", "report-scale-test.json"})
#: ``atomic_write``'s temporaries (``.<name>.<8 random chars>``), left behind by a SIGKILL.
TEMPORARY = re.compile(r"^\.(?P<name>report\.json|report\.html|junit\.xml|summary\.md|bench\.json|"
                       r"\.conform-out\.json)\.[A-Za-z0-9_]{8}$")


class OutError(Exception):
    """An --out folder conform must not use (a usage error: exit 2)."""


def _homes() -> set[Path]:
    homes = {Path.home()}
    try:
        homes |= {Path(entry.pw_dir) for entry in pwd.getpwall() if entry.pw_dir not in ("", "/")}
    except OSError:
        pass
    return {h.resolve() for h in homes}


def _refuse_outright(out: Path, case_paths) -> None:
    where = out.resolve()
    if where == Path(where.anchor):
        raise OutError(f"--out {out}: refusing to write reports into the root folder")
    if where in _homes():
        raise OutError(f"--out {out}: refusing to write reports into a home folder; name a folder for them")
    for path in case_paths:
        path = Path(path).resolve()
        if where == path or where in path.parents:
            raise OutError(f"--out {out}: holds the case files {path}; reports go in a folder of their own")
    if where.is_dir():
        ours = set(_owned(where))   # `conform hunt` writes minimal cases (YAML) into its own folder
        yaml = next((p.name for p in where.iterdir() if p.suffix in (".yaml", ".yml") and p.name not in ours), None)
        if yaml:
            raise OutError(f"--out {out}: holds case files ({yaml}); reports go in a folder of their own")


def _owned(out: Path) -> list[str]:
    """The names a readable manifest in ``out`` lists (none when there is no valid manifest)."""
    try:
        return (_read_manifest(out) or {}).get("owned", [])
    except OutError:
        return []


def _conform_entry(name: str) -> bool:
    return name in KNOWN or name in _OWN_FILES or name in _TOOLING or bool(TEMPORARY.match(name))


class OutDir:
    """A claimed output folder: locked, marked, and knowing which names it owns."""

    def __init__(self, path: Path, lock_fd: int, manifest: dict):
        self.path, self._lock_fd, self.manifest = path, lock_fd, manifest

    def own(self, names) -> None:
        """Add top-level names the command decided to write after it claimed the folder (``conform hunt``'s
        group files); a name that exists and is not conform's is refused (``OutError``), as in ``claim``."""
        new = sorted(set(names) - set(self.manifest["owned"]))
        theirs = [n for n in new if os.path.lexists(self.path / n)]
        if theirs:
            raise OutError(f"--out {self.path}: {', '.join(theirs)} exist(s) but conform did not write them; "
                           "move them away or choose another folder")
        if new:
            self.manifest["owned"] = sorted(self.manifest["owned"] + new)
            atomic_write(self.path / MANIFEST, json.dumps(self.manifest, indent=1) + "\n")

    def disown(self, names) -> None:
        """Forget names conform wrote earlier and has just removed (a new hunt's stale group files)."""
        gone = set(names)
        if gone & set(self.manifest["owned"]):
            self.manifest["owned"] = [n for n in self.manifest["owned"] if n not in gone]
            atomic_write(self.path / MANIFEST, json.dumps(self.manifest, indent=1) + "\n")

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)      # closing the descriptor drops the flock
            self._lock_fd = -1

    def __enter__(self) -> "OutDir":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(out: Path) -> int:
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        os.close(fd)
        try:
            info = json.loads(holder)
            who = f"pid {info['pid']} ({info['command']}), started {info['started']}"
        except (ValueError, KeyError, TypeError):
            who = "another process"
        raise OutError(f"--out {out}: in use by {who}; wait for it to finish or choose another folder") from None
    except OSError as exc:
        os.close(fd)
        raise OutError(f"--out {out}: cannot lock: {exc.strerror}") from None
    info = {"pid": os.getpid(), "command": shlex.join(["conform", *sys.argv[1:]]),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode("utf-8", "replace"), 0)
    return fd


def _read_manifest(out: Path) -> dict | None:
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutError(f"--out {out}: {MANIFEST} is unreadable ({exc}); move the folder away") from None
    if not (isinstance(manifest, dict) and manifest.get("schema") == SCHEMA
            and isinstance(manifest.get("owned"), list) and all(isinstance(n, str) for n in manifest["owned"])):
        raise OutError(f"--out {out}: {MANIFEST} is not a conform manifest; move the folder away")
    return manifest


def _foreign(out: Path) -> list[str]:
    """Entries of a folder without a manifest that no conform version writes."""
    return sorted(entry.name for entry in out.iterdir() if not _conform_entry(entry.name))


def claim(out: Path, writes, case_paths=()) -> OutDir:
    """Check, lock and mark ``out`` for a command that writes the top-level names ``writes``.

    Raises ``OutError`` (exit 2) when the folder must not be used (module docstring).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutError(f"--out {out}: exists and is not a folder")
    try:
        _refuse_outright(out, case_paths)
        # Checked before the lock file is created (never write into a foreign folder) and again under the lock.
        if out.is_dir() and not (out / MANIFEST).exists() and _foreign(out):
            raise _not_ours(out)
    except OSError as exc:
        raise OutError(f"--out {out}: cannot read the folder: {exc.strerror or exc}") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = _lock(out)
    except OSError as exc:
        raise OutError(f"--out {out}: cannot create or write the folder: {exc.strerror or exc}") from None
    try:
        manifest = _read_manifest(out)
        if manifest is None:
            if _foreign(out):
                raise _not_ours(out)
            present = sorted(e.name for e in out.iterdir() if e.name in KNOWN)   # empty, or an earlier conform's
            manifest = {"schema": SCHEMA, "created_by": f"conform {__version__}",
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "owned": present}
        theirs = sorted(n for n in writes if n not in manifest["owned"] and os.path.lexists(out / n))
        if theirs:
            raise OutError(f"--out {out}: {', '.join(theirs)} exist(s) but conform did not write them; "
                           "move them away or choose another folder")
        for entry in out.iterdir():   # temporaries of a killed earlier run (conform's own names only)
            if TEMPORARY.match(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink()
        owned = sorted(set(manifest["owned"]) | set(writes))
        if owned != manifest["owned"] or not (out / MANIFEST).exists():
            manifest["owned"] = owned
            atomic_write(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        return OutDir(out, fd, manifest)
    except OSError as exc:
        os.close(fd)
        raise OutError(f"--out {out}: cannot write the folder: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        raise


def _not_ours(out: Path) -> OutError:
    shown = _foreign(out)
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return OutError(f"--out {out}: not empty and not written by conform ({', '.join(shown[:5])}{more}); "
                    "choose a new or empty folder")


def check_writable(out: Path) -> None:
    """Refuse, before anything runs, an output folder conform could not create or write into.

    The folder itself may not exist yet; its closest existing ancestor must be a
    writable folder (not a file, not on a read-only file system).
    """
    try:
        existing = out.absolute()
        while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            where = "exists and is not a folder" if existing == out.absolute() else f"is under {existing}, a file"
            raise OutError(f"--out {out}: {where}")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutError(f"--out {out}: {existing} is not writable (permissions or a read-only file system)")
    except OSError as exc:
        raise OutError(f"--out {out}: {exc.strerror or exc}") from None
