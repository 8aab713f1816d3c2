"""Worker processes: one long-lived process per backend, so each framework is
imported once per run and a crash or hang costs one result, never the run.

Note [Worker protocol]
----------------------
The parent starts a worker with the ``spawn`` method (no inherited threads or
framework state), sends ``Call`` objects over a pipe and waits for an
``Outcome`` with a deadline. Three things can go wrong, and each costs only
the call in flight:

* the process dies (segfault, abort, OOM kill): the pipe reports EOF, the
  verdict is ``crash`` with the exit code or signal, the next call starts a
  fresh worker;
* its resident memory passes the budget: it is killed (verdict ``crash``,
  with the figures) long before the kernel's OOM killer would pick a victim;
* no answer before the deadline: the process is killed, the verdict is
  ``timeout``, the next call starts a fresh worker;
* the framework raises: that is an answer, not a failure of the worker.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from harness.backends.base import Call, Outcome

STARTUP_TIMEOUT_S = 300.0
POLL_S = 0.05
GIB = 1 << 30
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class Crash:
    reason: str


@dataclass
class Timeout:
    seconds: float


def _serve(target: str, conn, log_path: Optional[str]) -> None:
    """Worker main loop: import the backend once, then answer calls until EOF or None."""
    if log_path:
        # Frameworks write banners and warnings straight to fd 1/2; keep them out of the
        # user's terminal, in a log the crash verdict can quote.
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    from harness.backends import load_class

    try:
        backend = load_class(target)()
        backend.setup()
    except BaseException as exc:  # report why the framework cannot start, then exit
        conn.send(("setup_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        kind, call, *extra = request
        conn.send(backend.run(call) if kind == "run" else backend.bench(call, *extra))


def describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "worker died"
    if code < 0:
        try:
            return f"worker killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"


class Worker:
    """A backend's worker process, restarted on demand after a crash or timeout."""

    def __init__(self, backend_id: str, target: str, log_path: Optional[Path] = None,
                 memory_limit: Optional[int] = None):
        self.backend_id = backend_id
        self.target = target
        self.log_path = log_path
        self.memory_limit = memory_limit
        self._cancelled = threading.Event()
        self.process = None
        self.conn = None
        self.setup_error: Optional[str] = None

    def start(self) -> bool:
        """Start the worker; False (with ``setup_error``) if the framework cannot start."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        log = str(self.log_path) if self.log_path else None
        self.process = ctx.Process(target=_serve, args=(self.target, child, log), daemon=True,
                                   name=f"conform-{self.backend_id}")
        self.process.start()
        child.close()
        self.conn = parent
        if not parent.poll(STARTUP_TIMEOUT_S):
            self.stop(kill=True)
            self.setup_error = f"worker did not start within {STARTUP_TIMEOUT_S:.0f} s"
            return False
        try:
            kind, detail = parent.recv()
        except (EOFError, OSError):
            self.setup_error = describe_exit(self._reap())
            return False
        if kind != "ready":
            self.setup_error = detail
            self.stop()
            return False
        return True

    def _crash(self) -> Crash:
        reason = describe_exit(self._reap())
        tail = self.log_tail(3)
        return Crash(f"{reason}; last log lines: {tail}" if tail else reason)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines the worker wrote (for crash reasons)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path else ""
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())

    def _reap(self) -> Optional[int]:
        if self.process is None:
            return None
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        code = self.process.exitcode
        self.process, self.conn = None, None
        return code

    def call(self, call: Call, timeout_s: float) -> Union[Outcome, Crash, Timeout]:
        """Run one call; the answer, or what went wrong with the worker."""
        return self._request(("run", call), timeout_s)

    def bench(self, call: Call, warmup: int, repeats: int, timeout_s: float):
        """Time the backend's own call ``repeats`` times after ``warmup`` calls (a list of ms)."""
        return self._request(("bench", call, warmup, repeats), timeout_s)

    def _request(self, request, timeout_s: float):
        if self.process is not None and not self.process.is_alive():
            self._reap()   # died while idle (killed from outside): costs no result, just a restart
        if self.process is None and not self.start():
            return Crash(f"worker could not be restarted: {self.setup_error}")
        started = time.monotonic()
        try:
            self.conn.send(request)
            # Poll in short slices so a runaway allocation is stopped long before the OOM killer.
            while (waited := time.monotonic() - started) < timeout_s:
                if self.conn.poll(min(POLL_S, timeout_s - waited)):
                    return self.conn.recv()
                if self._cancelled.is_set():
                    return Crash("cancelled: the run was interrupted")
                rss = self.rss_bytes()
                if self.memory_limit and rss > self.memory_limit:
                    self.stop(kill=True)
                    return Crash(f"worker exceeded the memory budget ({rss / GIB:.2f} GiB > "
                                 f"{self.memory_limit / GIB:.2f} GiB) and was killed")
        except (EOFError, OSError, BrokenPipeError):
            return self._crash()
        if not self.process.is_alive():
            return self._crash()
        self.stop(kill=True)
        return Timeout(round(time.monotonic() - started, 3))

    def cancel(self) -> None:
        """Make the call in flight (from another thread) return at its next poll; the caller then stops us."""
        self._cancelled.set()

    def rss_bytes(self) -> int:
        """Resident memory of the worker (0 if unknown)."""
        try:
            with open(f"/proc/{self.process.pid}/statm") as handle:
                return int(handle.read().split()[1]) * PAGE_SIZE
        except (OSError, ValueError, IndexError, AttributeError):
            return 0

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if not kill and self.process.is_alive():
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
        self._reap()
