"""Executors: where a run's framework workers live (``conform run --executor``).

An executor makes the run's workers and says in report.json where they ran
(``environment.executor``). Every worker it makes has the interface of
``harness.worker.Worker`` (``start``, ``call``, ``bench``, ``cancel``,
``stop``, ``launch.label``, ``setup_error``), so the runner and the claims
runner do not know which executor they use.

* ``local`` (the default): one subprocess per backend on this machine
  (Note [Worker protocol] in ``harness/worker.py``).
* ``ray``: one Ray actor per backend, placed on a node that has the backend's
  declared ``resources``, hosting that same local worker there
  (Note [Ray executor] in ``harness/ray_executor.py``). Ray is an optional
  extra (``pip install 'conform[ray]'``); it is imported only when chosen.

An executor is a context manager: it holds what it started (a local Ray
instance) for the run and releases it after. ``start()`` may be called before
entering it, so that a cluster that cannot be reached is a usage error (exit 2)
before anything is written; entering a started executor starts nothing more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from harness import worker

EXECUTORS = ("local", "ray")


class ExecutorError(Exception):
    """The executor cannot be used (not installed, cluster unreachable): a usage error, exit 2."""


class LocalExecutor:
    """Workers are subprocesses of this process (``harness.worker.worker_for``)."""

    name = "local"

    def worker_for(self, backend_id: str, log_path: Optional[Path] = None, memory_limit: Optional[int] = None,
                   say=lambda text: None):
        return worker.worker_for(backend_id, log_path, memory_limit, say)

    def describe(self) -> dict:
        return {"name": self.name}

    def start(self) -> None:
        return None

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None


def open_executor(name: str, address: Optional[str] = None, *, jobs: int = 2, backends: tuple[str, ...] = ()):
    """The executor ``name`` (not yet entered); ``ExecutorError`` when it cannot be used as asked.

    ``jobs`` and ``backends`` size a Ray instance started for the run (without ``address``)."""
    if name == "local":
        if address is not None:
            raise ExecutorError("--address names a Ray cluster: it needs --executor ray")
        return LocalExecutor()
    if name == "ray":
        try:
            from harness.ray_executor import RayExecutor
        except ImportError as exc:
            raise ExecutorError(f"--executor ray needs Ray, which is not installed here ({exc}); install the "
                                "optional extra: pip install -c constraints.txt -e '.[ray]'") from None
        return RayExecutor(address, jobs=jobs, backends=backends)
    raise ExecutorError(f"unknown executor {name!r} (expected one of: {', '.join(EXECUTORS)})")
