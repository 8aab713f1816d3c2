"""Ctrl-C and SIGTERM: the first one stops the run, later ones cannot tear its reports.

Note [Interrupts]
-----------------
The first SIGINT or SIGTERM raises ``KeyboardInterrupt`` in the main thread:
the runner cancels the calls in flight (each returns within one poll slice,
Note [Worker protocol]), kills the workers and returns what finished, and the
CLI writes a report marked incomplete. A second signal a few milliseconds
later used to land in that clean-up or in the report writers and leave the
previous run's complete-looking report in place. So the handler disarms
itself when it fires: later signals are only counted, and the process ends as
soon as the incomplete report is written (every wait in the run has a
deadline, so that takes seconds; SIGKILL remains for the impatient).

``deferred()`` does the same for a run that finished on its own: a signal
that arrives while the final reports are written is noted, not raised, so the
reports are written whole (the caller then reports the interruption).
"""

from __future__ import annotations

import contextlib
import signal
import sys

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"armed": True, "received": 0}


def _handler(signum, frame) -> None:
    _state["received"] += 1
    if _state["armed"]:
        _state["armed"] = False
        raise KeyboardInterrupt
    if _state["received"] == 2:
        print("conform: interrupted again; finishing the report (SIGKILL stops at once)", file=sys.stderr)


def install() -> None:
    """Route SIGINT and SIGTERM to ``_handler`` (even when started with SIGINT ignored, as by ``cmd &``)."""
    _state.update(armed=True, received=0)
    for signum in _SIGNALS:
        signal.signal(signum, _handler)


def received() -> int:
    """How many SIGINT/SIGTERM arrived since ``install()``."""
    return _state["received"]


@contextlib.contextmanager
def deferred():
    """Signals arriving inside are counted, not raised."""
    armed, _state["armed"] = _state["armed"], False
    try:
        yield
    finally:
        _state["armed"] = armed
