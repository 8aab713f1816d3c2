"""Worker processes: one long-lived process per backend, so each framework is
imported once per run and a crash or hang costs one result, never the run.

Note [Worker protocol]
----------------------
The parent starts a worker as a fresh interpreter (``python -m harness.worker``:
no inherited threads or framework state), the backend environment's own
where it has one (Note [Environments] in ``harness/envs.py``), hands it one end
of a socket pair, sends it a ``Call`` and reads back an ``Outcome`` in the
format of Note [Worker transport] (``harness/ipc.py``). Every
wait has the call's deadline: delivering the request and reading the answer
together get ``timeout_s``. What can go wrong costs only the call in flight:

* the process dies (segfault, abort, OOM kill): the pipe reports EOF, the
  verdict is ``crash`` with the exit code or signal, the next call starts a
  fresh worker; but see Note [Damaged workers] for a worker that had
  answered other calls first;
* its resident memory passes the budget: it is killed (verdict ``crash``,
  with the figures) long before the kernel's OOM killer would pick a victim;
* the request cannot be delivered or no answer arrives before the deadline
  (a hung or stopped process): it is killed (SIGKILL ends a stopped process
  too), the verdict is ``timeout``, the next call starts a fresh worker;
* it does not become ready: starting (importing a framework) may take up to
  ``STARTUP_TIMEOUT_S``, but a worker whose CPU time stands still for
  ``STARTUP_STALL_S`` (stopped, or stuck) is killed at once; the backend's
  results are then ``crash`` with that reason;
* the run is interrupted: the call returns within one poll slice, and the
  runner kills the worker;
* the framework raises: that is an answer, not a failure of the worker.

Note [Damaged workers]
----------------------
A long-lived worker carries what earlier calls did to it. A native kernel
that writes past its buffer returns normally; glibc notices the damage only
when a later call frees or reuses the chunk (``corrupted size vs.
prev_size``), and that innocent call would be reported as the crash
(TensorFlow's F10 in docs/findings.md: oneDNN's strided 1x1 filter gradient
overflows its workspace, and conv2d_transpose cases dozens of calls later
died). So a call that kills a worker which had answered other calls first is
asked once more in a fresh worker: what the fresh worker says is the call's
result, with a note saying that the first worker died on it. A call that
kills a fresh worker is a ``crash`` at once. A kernel that crashes only
sometimes can thus pass on the retry; the note keeps that visible. A retry
that cannot answer (the fresh worker times out, exceeds the memory budget
or cannot start) leaves the first death as the ``crash``, both reasons
quoted. The Ray executor's wait allows for the two attempts.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from harness import envs, ipc
from harness.backends.base import Call, Outcome

STARTUP_TIMEOUT_S = 300.0
#: A starting worker that has used no CPU for this long is stopped or stuck, not slow (importing a framework
#: keeps a core busy): it is given up without waiting for STARTUP_TIMEOUT_S.
STARTUP_STALL_S = 20.0
STOP_TIMEOUT_S = 5.0
GIB = 1 << 30
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class Crash:
    reason: str
    #: For a worker that died: the calls it had answered before this one (0: it died on its first), Note
    #: [Damaged workers]. None: no death (cancelled, over the memory budget, could not start).
    after: Optional[int] = None


@dataclass
class Timeout:
    seconds: float


class _Cancelled(Exception):
    pass


class _OverBudget(Exception):
    pass


class _Stalled(Exception):
    pass


def _serve(target: str, pipe: int) -> None:
    """Worker main loop: import the backend once, then answer calls until EOF or None."""
    from harness.backends import load_class

    try:
        backend = load_class(target)()
        backend.setup()
    except BaseException as exc:  # report why the framework cannot start, then exit
        ipc.send(pipe, ("setup_error", f"{type(exc).__name__}: {exc}"))
        return
    ipc.send(pipe, ("ready", None))
    while True:
        try:
            request, arrays = ipc.recv(pipe)
        except (EOFError, OSError):
            return
        if request is None:
            return
        kind, call, *extra = request
        call.arrays = arrays
        began, began_cpu = time.perf_counter(), time.process_time()
        answer = backend.run(call) if kind == "run" else backend.bench(call, *extra)
        if isinstance(answer, Outcome):
            answer.worker_ms = (time.perf_counter() - began) * 1e3
            answer.worker_cpu_ms = (time.process_time() - began_cpu) * 1e3
        try:
            if isinstance(answer, Outcome) and (answer.output is not None or answer.gradients):
                frames = {f"grad_{name}": value for name, value in (answer.gradients or {}).items()}
                if answer.output is not None:
                    frames["output"] = answer.output
                header = dataclasses.replace(answer, output=None, gradients=None if answer.gradients is None else {})
                ipc.send(pipe, header, frames)
            else:
                ipc.send(pipe, answer)
        except OSError:   # the parent is gone
            return
        del call, arrays, answer   # release this call's memory before waiting for the next


class _Child:
    """A worker's process: ``subprocess.Popen`` behind the few calls the ``Worker`` makes."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: Optional[float] = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        if self.is_alive():
            self.popen.kill()

    @property
    def exitcode(self) -> Optional[int]:
        return self.popen.poll()    # negative: killed by that signal, as multiprocessing reports it


def describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "worker died"
    if code < 0:
        try:
            return f"worker killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"


def worker_for(backend_id: str, log_path: Optional[Path] = None, memory_limit: Optional[int] = None,
               say=lambda text: None) -> "Worker":
    """A (not yet started) worker for a backend id, possibly ``ID@VERSION``, in its environment, which is
    built first if it does not exist yet (``envs.BuildError`` if it cannot be)."""
    from harness.backends import registry, split_version
    return Worker(backend_id, registry()[split_version(backend_id)[0]], log_path, memory_limit,
                  envs.launch(backend_id, say))


class Worker:
    """A backend's worker process, restarted on demand after a crash or timeout."""

    def __init__(self, backend_id: str, target: str, log_path: Optional[Path] = None,
                 memory_limit: Optional[int] = None, launch: Optional[envs.Launch] = None):
        self.backend_id = backend_id
        self.target = target
        self.log_path = log_path
        self.memory_limit = memory_limit
        #: The interpreter and variables to start with (default: ours, with our import path).
        self.launch = launch or envs.Launch(sys.executable, {"PYTHONPATH": os.pathsep.join(filter(None, sys.path))},
                                            "shared")
        self._cancelled = threading.Event()
        self.process: Optional[_Child] = None
        self.conn: Optional[socket.socket] = None
        self.setup_error: Optional[str] = None
        self.answered = 0   # calls the current process has answered

    def start(self) -> bool:
        """Start the worker; False (with ``setup_error``) if the framework cannot start."""
        self.answered = 0
        parent, child = socket.socketpair()
        # Frameworks write banners and warnings straight to fd 1/2; keep them out of the user's
        # terminal, in a log the crash verdict can quote.
        log = open(self.log_path, "ab") if self.log_path else None
        variables = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        try:
            popen = subprocess.Popen(
                [self.launch.python, "-m", "harness.worker", self.target, str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env={**variables, **self.launch.variables}, close_fds=True)
        except OSError as exc:
            parent.close()
            self.setup_error = f"cannot start {self.launch.python}: {exc}"
            return False
        finally:
            child.close()
            if log is not None:
                log.close()
        self.process = _Child(popen)
        parent.setblocking(False)   # every transfer waits with a deadline (harness/ipc.py)
        self.conn = parent
        try:
            (kind, detail), _ = ipc.recv(parent.fileno(), time.monotonic() + STARTUP_TIMEOUT_S,
                                         self._startup_check())
        except ipc.DeadlineExceeded:
            self.stop(kill=True)
            self.setup_error = f"worker did not start within {STARTUP_TIMEOUT_S:.0f} s"
            return False
        except _Stalled:
            self.stop(kill=True)
            self.setup_error = f"worker made no progress for {STARTUP_STALL_S:g} s while starting (stopped or stuck)"
            return False
        except _Cancelled:
            self.stop(kill=True)
            self.setup_error = "cancelled: the run was interrupted"
            return False
        except (EOFError, OSError):
            self.setup_error = describe_exit(self._reap())
            return False
        if kind != "ready":
            self.setup_error = detail
            self.stop()
            return False
        return True

    def _startup_check(self):
        """The tick while starting: stop for a cancelled run, or a worker whose CPU time stands still."""
        progress = CpuProgress(self)

        def check() -> None:
            self._check_cancel()
            still = progress.still_for()        # None (no /proc): only STARTUP_TIMEOUT_S applies
            if still is not None and still > STARTUP_STALL_S:
                raise _Stalled
        return check

    def cpu_ticks(self) -> int:
        """User + system CPU time of the worker in clock ticks (-1 if unknown)."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()   # the name may hold spaces and parentheses
            return int(fields[11]) + int(fields[12])               # utime, stime (stat fields 14 and 15)
        except (OSError, ValueError, IndexError, AttributeError):
            return -1

    def _crash(self) -> Crash:
        after = self.answered
        reason = describe_exit(self._reap())
        tail = self.log_tail(3)
        return Crash(f"{reason}; last log lines: {tail}" if tail else reason, after)

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
        self.process.join(timeout=STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=STOP_TIMEOUT_S)
        code = self.process.exitcode
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn = None, None
        return code

    def call(self, call: Call, timeout_s: float) -> Union[Outcome, Crash, Timeout]:
        """Run one call; the answer, or what went wrong with the worker. A worker that dies on it after
        answering other calls is replaced and asked once more (Note [Damaged workers])."""
        answer = self._request(("run", call), call, timeout_s)
        if not (isinstance(answer, Crash) and answer.after):
            return answer
        first = answer
        answer = self._request(("run", call), call, timeout_s)
        if isinstance(answer, Crash) and answer.after is not None:
            return Crash(f"{answer.reason} (a fresh worker died on it too; the first had answered "
                         f"{first.after} calls)", answer.after)
        if isinstance(answer, Crash) and not answer.reason.startswith("cancelled"):
            # The retry could not run (no worker, over the memory budget): the first death stays the answer.
            return Crash(f"{first.reason} (retried in a fresh worker: {answer.reason})", first.after)
        if isinstance(answer, Timeout):
            return Crash(f"{first.reason} (after {first.after} calls; retried in a fresh worker, which ran out of "
                         f"time after {answer.seconds} s)", first.after)
        if isinstance(answer, Outcome):
            answer.notes = [f"a worker that had answered {first.after} calls died on this one ({first.reason}); a "
                            "fresh worker answered it: an earlier call likely damaged the first"] + list(answer.notes)
        return answer

    def bench(self, call: Call, warmup: int, repeats: int, timeout_s: float, warmup_s: float = 0.0):
        """Time the backend's own call ``repeats`` times after a warm-up of at least ``warmup`` calls and
        ``warmup_s`` seconds (a list of ms)."""
        return self._request(("bench", call, warmup, repeats, warmup_s), call, timeout_s)

    def _check_cancel(self) -> None:
        if self._cancelled.is_set():
            raise _Cancelled

    def _check(self) -> None:
        """Between poll slices: stop for a cancelled run or a runaway allocation (long before the OOM killer)."""
        self._check_cancel()
        rss = self.rss_bytes()
        if self.memory_limit and rss > self.memory_limit:
            raise _OverBudget(f"worker exceeded the memory budget ({rss / GIB:.2f} GiB > "
                              f"{self.memory_limit / GIB:.2f} GiB) and was killed")

    def _request(self, request: tuple, call: Call, timeout_s: float):
        if self.process is not None and not self.process.is_alive():
            self._reap()   # died while idle (killed from outside): costs no result, just a restart
        if self.process is None and not self.start():
            return Crash(f"worker could not be restarted: {self.setup_error}")
        started = time.monotonic()
        deadline = started + timeout_s
        kind, _, *extra = request
        try:
            ipc.send(self.conn.fileno(), (kind, dataclasses.replace(call, arrays={}), *extra), call.arrays,
                     deadline, self._check)
            answer, arrays = ipc.recv(self.conn.fileno(), deadline, self._check)
        except _Cancelled:
            return Crash("cancelled: the run was interrupted")
        except _OverBudget as exc:
            self.stop(kill=True)
            return Crash(str(exc))
        except (EOFError, OSError):
            return self._crash()
        except ipc.DeadlineExceeded:
            if not self.process.is_alive():
                return self._crash()
            self.stop(kill=True)
            return Timeout(round(time.monotonic() - started, 3))
        self.answered += 1
        if "output" in arrays:
            answer.output = arrays["output"]
        if getattr(answer, "gradients", None) is not None:
            answer.gradients = {name[len("grad_"):]: value for name, value in arrays.items()
                                if name.startswith("grad_")}
        return answer

    def alive(self) -> bool:
        """Whether the worker's process is running (else the next call starts a fresh one)."""
        return self.process is not None and self.process.is_alive()

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
                ipc.send(self.conn.fileno(), None, deadline=time.monotonic() + STOP_TIMEOUT_S)
                self.process.join(timeout=STOP_TIMEOUT_S)
            except (OSError, ipc.DeadlineExceeded):
                pass
        if self.process.is_alive():
            self.process.kill()
        self._reap()


class CpuProgress:
    """How long a worker's CPU time (``Worker.cpu_ticks``: clock ticks of 10 ms) has stood still, from the
    polls of ``still_for``: a worker starting makes progress (``Worker.start``), one whose runtime left threads
    spinning is not quiet yet (``conform bench``, Note [Turns])."""

    def __init__(self, worker: "Worker"):
        self.worker = worker
        self.ticks, self.since = worker.cpu_ticks(), time.monotonic()

    def still_for(self) -> Optional[float]:
        """Seconds since the CPU time last moved (as of this poll); None when it cannot be read."""
        ticks, now = self.worker.cpu_ticks(), time.monotonic()
        if ticks != self.ticks:
            self.ticks, self.since = ticks, now
        return None if ticks < 0 else now - self.since


def stop_all(workers: Iterable[Union[Worker, Any]], kill: bool = False) -> None:
    """Stop every worker; with ``kill`` (an interrupted run) cancel its call in flight and kill it at once. One
    that fails to stop does not keep the others running: the first error is raised after."""
    failed: Optional[BaseException] = None
    for worker in workers:
        try:
            if kill:
                worker.cancel()
            worker.stop(kill=kill)
        except Exception as exc:        # noqa: BLE001 - raised once every worker is stopped
            failed = failed or exc
    if failed is not None:
        raise failed


if __name__ == "__main__":      # python -m harness.worker MODULE:CLASS FD (started by Worker.start)
    _serve(sys.argv[1], int(sys.argv[2]))
