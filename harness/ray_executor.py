"""The Ray executor (``conform run --executor ray [--address ADDR]``): each backend's worker on a Ray node.

Note [Ray executor]
-------------------
A framework team's nightly spans machines: CPU runners, GPU and NPU hosts. The
executor places each backend on a node that has what the backend declares
(``Backend.resources``: ``{"CPU": 1}`` by default, ``{"GPU": 1}`` or a custom
``{"NPU": 1}`` for an accelerator surface) and keeps every guarantee of the
local executor, by running the local executor's own code there:

* one actor per backend (``_Host``), created with the declared resources,
  which it holds for the run, so two workers never share one accelerator;
* the actor starts an ordinary ``harness.worker.Worker`` on its node: the
  backend's environment is built there (Note [Environments]), and the memory
  budget, crash and timeout handling of Note [Worker protocol] are the local
  ones, next to the hardware. A worker that crashes or hangs costs one
  ``crash`` or ``timeout`` result with the local executor's reason, and the
  actor restarts it for the next call;
* the parent (``RayWorker``, the ``Worker`` interface) sends each call to its
  actor. Arrays travel in the call and answer objects through Ray's object
  store (NumPy arrays pickle out of band, without a copy into the message);
  the actor and its worker talk the unchanged transport of Note [Worker
  transport], so the worker need not share the actor's NumPy;
* the actor itself can die (its process killed, its node lost): ``ray.get``
  raises a ``RayError``, the call is one ``crash`` with Ray's reason, and the
  next call creates a new actor (a new placement, possibly on another node);
* the parent applies the call's deadline too, as a backstop for an actor that
  stops answering: past ``timeout + GRACE_S`` it asks the actor whether it is
  alive; an actor that answers is waiting on its worker, whose own deadlines
  bound the wait (``timeout``, and a restart's ``STARTUP_TIMEOUT_S``), so it
  gets until their sum; one that does not answer within ``GRACE_S`` is killed
  and the call is a ``timeout``. Cancelling a run (Ctrl-C) returns within one
  poll slice, as locally.

Why not run the framework inside the actor process itself: a segfault would
then take down the actor and Ray would log a worker failure per crash case, a
hang could only be ended by killing the actor, and frameworks that need their
own environment (MindSpore's NumPy 1.x) could not share one actor interpreter.

Sizing. Declared resources are placement claims held for the run, not a limit
on concurrency: ``--jobs`` still bounds the calls in flight. So a Ray instance
started for the run (no ``--address``) is given ``max(jobs, Σ declared CPUs)``
logical CPUs, enough to place every selected backend at once, as the local
executor starts every backend's process; accelerators are detected by Ray. A
backend whose resources no node of the cluster has is not waited for: its
results are ``crash``, naming what it needs. Ray sets ``OMP_NUM_THREADS=1`` in
its worker processes; the actor restores the driver's value (or its absence)
before starting the worker, so a framework uses the node's cores as it would
locally. With ``--address``, every node needs conform installed, at the
driver's version, and the frameworks it hosts, as a local run does.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional, Union

import ray
from ray.exceptions import GetTimeoutError, RayError

from harness import envs
from harness.backends import backend_class
from harness.backends.base import Call, Outcome
from harness.worker import STARTUP_TIMEOUT_S, STOP_TIMEOUT_S, Crash, Timeout, worker_for

#: How long an actor may be silent past its call's deadline, and how long it has to answer "are you alive".
GRACE_S = 10.0
POLL_S = 0.05
#: Variables Ray sets in its worker processes that change how a framework runs: the worker gets the driver's.
DRIVER_VARIABLES = ("OMP_NUM_THREADS", "PYTHONBREAKPOINT")
CONNECT_TIMEOUT_S = 10.0
SUBREAPER = "RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper"


class _Cancelled(Exception):
    pass


def ray_options(resources: dict[str, float]) -> dict:
    """A backend's declared resources as ``ray.remote`` options (CPU and GPU have their own keywords)."""
    options: dict = {"num_cpus": 0, "num_gpus": 0, "resources": {}}
    for name, amount in resources.items():
        key = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}.get(name)
        if key:
            options[key] = amount
        else:
            options["resources"][name] = amount
    return options


def _offered(resources: dict[str, float]) -> bool:
    """Whether some live node of the cluster has ``resources`` (in total, busy or not)."""
    return any(node.get("Alive") and all(node["Resources"].get(name, 0) >= amount
                                         for name, amount in resources.items() if amount)
               for node in ray.nodes())


def _wait_for_children() -> None:
    """Undo Ray's ``SIGCHLD`` ignored (its raylet-subreaper option sets it in the driver and every worker):
    the kernel would reap our children, and ``Popen`` read a crashed worker's exit status (or uv's) as 0.
    Process-wide, and callable from any thread (an actor's methods run in a pool)."""
    ctypes.CDLL(None).signal(signal.SIGCHLD, signal.SIG_DFL)


def _reachable(address: str) -> None:
    """A ``host:port`` cluster address answers a TCP connection (``ConnectionError`` if not): ``ray.init``
    itself retries an unreachable GCS for minutes, printing warnings. ``auto`` and ``ray://`` are Ray's."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConnectionError(f"{host}:{port} does not answer ({exc.strerror or exc})") from None


def _reason(exc: BaseException) -> str:
    """Ray's explanation of a dead actor, in one line: its first sentence and why the actor is dead (the
    actor's ids and Ray's list of common causes left out)."""
    text = " ".join(str(exc).split())
    first = text.split(". ", 1)[0].rstrip(".")
    why = re.search(r"(The actor is dead because .*?)(?: Some common causes|$)", text)
    detail = f"; {why.group(1)}" if why and why.group(1) not in first else ""
    return f"{type(exc).__name__}: {first}{detail}"[:500]


@ray.remote(max_concurrency=4)   # a call, and beside it the parent's ping, cancel and stop
class _Host:
    """On its node: one backend's local ``Worker``, and the calls forwarded to it."""

    def __init__(self, backend_id: str, log_path: Optional[str], memory_limit: Optional[int],
                 variables: dict[str, Optional[str]]):
        _wait_for_children()
        for name, value in variables.items():     # the driver's, not the ones Ray gives its own workers
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.backend_id, self.memory_limit = backend_id, memory_limit
        self.log_path = Path(log_path) if log_path else None
        if self.log_path is not None and not self.log_path.parent.is_dir():   # another host: a log of its own
            self.log_path = Path(tempfile.gettempdir()) / "conform-logs" / self.log_path.name
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.worker = None

    def start(self) -> tuple[bool, Optional[str], list[str], str]:
        """Build the environment if needed and start the worker: (ok, setup error, notes, environment label)."""
        notes: list[str] = []
        try:
            self.worker = worker_for(self.backend_id, self.log_path, self.memory_limit, notes.append)
        except envs.BuildError as exc:
            return False, f"its environment could not be built: {exc}", notes, "not built"
        ok = self.worker.start()
        return ok, self.worker.setup_error, notes, self.worker.launch.label

    def call(self, call: Call, timeout_s: float):
        return self.worker.call(call, timeout_s)

    def bench(self, call: Call, warmup: int, repeats: int, timeout_s: float, warmup_s: float = 0.0):
        return self.worker.bench(call, warmup, repeats, timeout_s, warmup_s)

    def ping(self) -> int:
        return os.getpid()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def stop(self, kill: bool) -> None:
        if self.worker is not None:
            self.worker.stop(kill=kill)


class RayWorker:
    """A backend's worker hosted by a Ray actor; the interface of ``harness.worker.Worker``."""

    def __init__(self, backend_id: str, log_path: Optional[Path] = None, memory_limit: Optional[int] = None,
                 say=lambda text: None):
        self.backend_id = backend_id
        self.log_path = log_path
        self.memory_limit = memory_limit
        self.say = say
        self.resources = dict(backend_class(backend_id).resources)
        #: Where the worker runs, as far as this host knows (the node's own label once it started).
        self.launch = envs.Launch("(on a Ray node)", {}, envs.label_of(backend_id))
        self.actor = None
        self.setup_error: Optional[str] = None
        self._cancelled = threading.Event()

    def start(self) -> bool:
        """Place the actor and start its worker; False (with ``setup_error``) if either cannot be done."""
        if not _offered(self.resources):
            self.setup_error = f"no node of the Ray cluster offers the resources it declares, {self.resources}"
            return False
        # And the driver's value of a variable the backend's worker would otherwise start with (a user's setting
        # is kept: ``envs.launch``).
        names = DRIVER_VARIABLES + tuple(backend_class(self.backend_id).worker_variables)
        variables = {name: os.environ.get(name) for name in names}
        self.actor = _Host.options(**ray_options(self.resources)).remote(
            self.backend_id, str(self.log_path) if self.log_path else None, self.memory_limit, variables)
        try:
            # Placement may wait for a busy node; the build (envs.BUILD_TIMEOUT_S) and start have their own bounds.
            ok, error, notes, label = self._wait(self.actor.start.remote(),
                                                 envs.BUILD_TIMEOUT_S + STARTUP_TIMEOUT_S + GRACE_S)
        except _Cancelled:
            self.setup_error = "cancelled: the run was interrupted"
        except GetTimeoutError:
            self.setup_error = "its Ray actor was not placed and started in time"
        except RayError as exc:
            self.setup_error = _reason(exc)
        else:
            for note in notes:
                self.say(note)
            self.launch = envs.Launch(self.launch.python, {}, label)
            self.setup_error = error
            if ok:
                return True
        self._discard()
        return False

    def _wait(self, ref, budget_s: float, probe_after_s: Optional[float] = None):
        """``ray.get(ref)`` within ``budget_s``, returning within a poll slice of a cancel; past
        ``probe_after_s`` only while the actor still answers a ping (``GetTimeoutError`` otherwise)."""
        started = time.monotonic()
        while True:
            if self._cancelled.is_set():
                raise _Cancelled
            ready, _ = ray.wait([ref], timeout=POLL_S)
            if ready:
                return ray.get(ref)
            elapsed = time.monotonic() - started
            if elapsed > budget_s:
                raise GetTimeoutError(f"no answer within {budget_s:g} s")
            if probe_after_s is not None and elapsed > probe_after_s:
                ray.get(self.actor.ping.remote(), timeout=GRACE_S)   # GetTimeoutError: the actor is stuck
                probe_after_s = elapsed + GRACE_S

    def call(self, call: Call, timeout_s: float) -> Union[Outcome, Crash, Timeout]:
        """Run one call on the actor's worker; the answer, or what went wrong with the worker or the actor."""
        return self._request("call", (call, timeout_s), timeout_s)

    def bench(self, call: Call, warmup: int, repeats: int, timeout_s: float, warmup_s: float = 0.0):
        return self._request("bench", (call, warmup, repeats, timeout_s, warmup_s), timeout_s)

    def _request(self, method: str, args: tuple, timeout_s: float):
        if self.actor is None and not self.start():
            return Crash(f"worker could not be restarted: {self.setup_error}")
        started = time.monotonic()
        try:
            # The worker's own deadlines bound its answer: the call's, after a restart's if it needs one, twice
            # for a call retried in a fresh worker (Note [Damaged workers] in harness/worker.py).
            return self._wait(getattr(self.actor, method).remote(*args),
                              2 * (timeout_s + STARTUP_TIMEOUT_S) + GRACE_S, probe_after_s=timeout_s + GRACE_S)
        except _Cancelled:
            return Crash("cancelled: the run was interrupted")
        except GetTimeoutError:
            self._discard()
            return Timeout(round(time.monotonic() - started, 3))
        except RayError as exc:
            self._discard()
            return Crash(_reason(exc))

    def cancel(self) -> None:
        """Make the call in flight (from another thread) return at its next poll; the caller then stops us."""
        self._cancelled.set()
        actor = self.actor   # another lane's _discard may clear it meanwhile
        if actor is not None:
            actor.cancel.remote()

    def stop(self, kill: bool = False) -> None:
        """Stop the worker on its node, then end the actor (and free its resources)."""
        if self.actor is None:
            return
        try:
            ray.get(self.actor.stop.remote(kill), timeout=STOP_TIMEOUT_S + GRACE_S)
        except RayError:
            pass
        self._discard()

    def _discard(self) -> None:
        """Kill the actor. A worker it still hosts dies with it only where the raylet reaps its children:
        the local instance started for a run sets ``SUBREAPER``; a cluster given by ``--address`` must have been
        started with it, or a hung worker outlives its actor (README, "Running on a Ray cluster")."""
        if self.actor is not None:
            try:
                ray.kill(self.actor, no_restart=True)
            except RayError:
                pass
            self.actor = None


class RayExecutor:
    """Connects to a Ray cluster (``address``) or starts a local instance for the run; makes ``RayWorker``s."""

    name = "ray"

    def __init__(self, address: Optional[str] = None, *, jobs: int = 2, backends: tuple[str, ...] = ()):
        self.address = address
        self.jobs = jobs
        self.backends = tuple(backends)
        self.started = False

    def __enter__(self) -> "RayExecutor":
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            ray.shutdown()
            self.started = False

    def start(self) -> None:
        """Connect to the cluster, or start the local instance (``ExecutorError`` if that fails)."""
        from harness.executors import ExecutorError
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
        # ray.init installs its own SIGTERM handler; conform's (Note [Interrupts]) must stay in force.
        handlers = ({s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
                    if threading.current_thread() is threading.main_thread() else {})
        try:
            if self.address is None:
                cpus = sum(backend_class(b).resources.get("CPU", 0) for b in self.backends)
                # The raylet kills what an actor leaves behind (its worker) even when the actor dies by SIGKILL;
                # read by the raylet at its start, so set for ray.init only.
                previous = os.environ.get(SUBREAPER)
                os.environ[SUBREAPER] = "true"
                try:
                    ray.init(address="local", num_cpus=max(self.jobs, int(cpus + 0.999)),
                             include_dashboard=False, **quiet)
                finally:
                    if previous is None:
                        os.environ.pop(SUBREAPER, None)
                    else:
                        os.environ[SUBREAPER] = previous
                    _wait_for_children()
            else:
                _reachable(self.address)
                ray.init(address=self.address, **quiet)
        except Exception as exc:   # ConnectionError, ValueError, RuntimeError: Ray's reason, in one line
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise ExecutorError(f"cannot connect to {where}: {' '.join(str(exc).split())[:400]}") from None
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        self.started = True

    def worker_for(self, backend_id: str, log_path: Optional[Path] = None, memory_limit: Optional[int] = None,
                   say=lambda text: None) -> RayWorker:
        return RayWorker(backend_id, log_path, memory_limit, say)

    def describe(self) -> dict:
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        return {"name": self.name, "address": self.address or "local", "nodes": len(nodes),
                "ray": ray.__version__, "resources": {k: v for k, v in sorted(ray.cluster_resources().items())
                                                      if not k.startswith("node:") and "memory" not in k}}
