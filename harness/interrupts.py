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

``deferred()`` protects the final report writing (and the switch of the
report set, harness/report/publish.py): a signal that arrives inside is held
and delivered when the reports are whole, so a run that finished on its own
then ends as interrupted with complete reports.

The runner's pipeline (harness/pipeline.py) holds signals the same way while
its threads run, and looks at the held ones at the top of its loop: an
exception raised by a signal handler lands between any two bytecodes, and
one that lands in ``Condition.__enter__`` after the lock is taken (as in
``queue.Queue.get``) leaves the lock held for ever, since the ``with`` block
that would release it was never entered. Measured: ~15 % of KeyboardInterrupts
raised into a loop of ``Queue.get`` calls left the queue's mutex locked. In the
pipeline, the lanes then blocked putting their answers on that queue and the
run never ended after Ctrl-C. So the pipeline's thread is only interrupted
where it holds no lock.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

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
    """SIGINT/SIGTERM arriving inside are held and delivered when the block ends (main thread only).

    Whatever the block writes is written whole; the held signal then reaches the handler in force
    (``_handler``: the first one ends the command as interrupted, later ones are only counted). The block
    gets the list of signals held so far, to leave early when it is not empty. When the block raises, its own
    error goes on, not the KeyboardInterrupt a held signal would raise.
    """
    if threading.current_thread() is not threading.main_thread():   # signal handlers are the main thread's
        yield []
        return
    caught: list[int] = []
    with _blocked():    # a signal between two swaps would leave one handler swapped for good
        previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in _SIGNALS}
    failed = False
    try:
        yield caught
    except BaseException:
        failed = True
        raise
    finally:
        with _blocked():
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            try:
                signal.raise_signal(signum)
            except KeyboardInterrupt:
                if not failed:      # else the block's own error goes on: the handler has counted the signal
                    raise


@contextlib.contextmanager
def _blocked():
    """SIGINT and SIGTERM held by the OS inside (delivered, to the handlers then in force, as it ends)."""
    if not hasattr(signal, "pthread_sigmask"):      # not POSIX
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
