"""The runner's schedule: cases prepared ahead, one lane per backend, a fixed number of calls at once.

Note [Pipeline]
---------------
A run is (case × backend) calls. Three things decide how busy the cores are:

* The parent's own work per case — operands, the oracle's output and
  magnitude, the gradient oracles — must not leave the workers waiting. A
  *producer* thread prepares cases ahead of the calls (NumPy and BLAS release
  the GIL), into a *window* bounded by a count and, when the run has a memory
  budget, by the parent bytes each prepared case will hold (its operands,
  references and every backend's answer until it is judged). A case is
  admitted before it is prepared, so the one being prepared counts too. The
  window always admits one case, which validation already proved fits.
* A backend answers one call at a time (its worker is one process), but
  backends need not wait for one another: each has a *lane*, a thread that
  takes the cases of the window in order, so a fast backend is several cases
  ahead of a slow one instead of idling at the end of every case.
* At most ``slots`` calls run at once (``--jobs``: one per core). When a slot
  frees, it goes to the waiting lane with the *oldest* case, so the oldest
  case completes first and the window moves; starting a worker (importing a
  framework) takes a slot too, ahead of every case.

A case is finished — compared across backends, classified, written — in the
caller's thread as soon as its last lane answers, whatever the order cases
complete in; the runner sorts the results at the end, so the report's order
never depends on the schedule. Nothing here knows about frameworks: the
runner passes the work in as functions.

While the threads run, Ctrl-C and SIGTERM are held and turned into
``KeyboardInterrupt`` at the top of the caller's loop, where it holds no lock
(Note [Interrupts]): raised inside ``done.get`` it could leave the queue's
lock taken, and the lanes would wait for ever to put their answers. A case
being finished is finished (and written whole) before the interrupt.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from harness import interrupts

#: How many prepared cases may wait for their calls when no memory budget bounds the window sooner.
DEFAULT_WINDOW = 16
_POLL_S = 0.25


class Slots:
    """``n`` permits, granted to the waiter with the lowest priority number first (FIFO among equals)."""

    def __init__(self, n: int):
        self._free = max(1, n)
        self._waiting: list[tuple[int, int]] = []
        self._order = itertools.count()
        self._lock = threading.Condition()
        self.closed = False

    @contextmanager
    def held(self, priority: int):
        ticket = (priority, next(self._order))
        with self._lock:
            heapq.heappush(self._waiting, ticket)
            while not self.closed and (self._free == 0 or self._waiting[0] != ticket):
                self._lock.wait()
            self._waiting.remove(ticket)
            heapq.heapify(self._waiting)
            if self.closed:
                self._lock.notify_all()
                raise Stopped
            self._free -= 1
            if self._free and self._waiting:
                # Two permits freed at once wake every waiter, but only the first in line may take one; one
                # that looked before it did went back to sleep, and must look again at the permit left.
                self._lock.notify_all()
        try:
            yield
        finally:
            with self._lock:
                self._free += 1
                self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._lock.notify_all()


class Stopped(Exception):
    """The pipeline is stopping (interrupted or failed): the lane gives up its remaining work."""


@dataclass
class _Window:
    """Prepared cases not yet finished: how many, and the parent bytes they hold."""
    limit: int
    budget: Optional[int]
    count: int = 0
    bytes: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    def admit(self, cost: int, stopping: threading.Event) -> None:
        with self.lock:
            while not stopping.is_set() and self.count and (
                    self.count >= self.limit or (self.budget is not None and self.bytes + cost > self.budget)):
                self.lock.wait(_POLL_S)
            self.count += 1
            self.bytes += cost

    def release(self, cost: int) -> None:
        with self.lock:
            self.count -= 1
            self.bytes -= cost
            self.lock.notify_all()


_END = object()


def run_pipeline(items: Iterable[Any], *, prepare: Callable[[Any], Optional[Any]],
                 lanes_of: Callable[[Any], list[str]], work: Callable[[str, Any, Callable], Any],
                 finish: Callable[[Any, dict[str, Any]], None], lanes: list[str],
                 start: Optional[Callable[[str], None]] = None, cancel: Callable[[], None] = lambda: None,
                 slots: int = 2, window: int = DEFAULT_WINDOW, budget: Optional[int] = None,
                 cost: Callable[[Any], int] = lambda item: 0) -> None:
    """Run every item through its lanes (Note [Pipeline]).

    ``prepare(item)`` -> a prepared case, or None when nothing is left to run for it; ``lanes_of(prepared)``
    -> the lanes it needs; ``work(lane, prepared, slot)`` -> that lane's answer, calling ``slot()`` (a context
    manager) around whatever occupies a core; ``finish(prepared, {lane: answer})`` runs in the caller's thread.
    ``cost(item)``: the parent bytes the item holds once prepared, before it is prepared (the window's
    measure). ``start(lane)`` runs once per lane under a slot before its first case. On KeyboardInterrupt ``cancel()``
    is called (to abort the calls in flight), the lanes stop, and the interrupt propagates; any exception in a
    lane or the producer stops everything and is raised here.
    """
    stopping = threading.Event()
    permits = Slots(slots)
    bound = _Window(max(1, window), budget)
    inboxes: dict[str, queue.Queue] = {lane: queue.Queue() for lane in lanes}
    done: queue.Queue = queue.Queue()   # ("prepared", ...) | ("answer", ...) | ("produced",) | ("failed", exc)
    started: set[str] = set()

    def producer() -> None:
        try:
            for sequence, item in enumerate(items):
                if stopping.is_set():
                    break
                size = cost(item)
                bound.admit(size, stopping)   # before preparing: the preparation is what takes the memory
                if stopping.is_set():
                    break
                prepared = prepare(item)
                if prepared is None:
                    bound.release(size)
                    continue
                needed = lanes_of(prepared)
                done.put(("prepared", sequence, prepared, tuple(needed), size))
                for lane in needed:
                    inboxes[lane].put((sequence, prepared))
        except BaseException as exc:   # noqa: BLE001 - re-raised in the caller's thread
            done.put(("failed", exc))
        finally:
            for inbox in inboxes.values():
                inbox.put(_END)
            done.put(("produced",))

    def lane_loop(lane: str) -> None:
        try:
            while True:
                task = inboxes[lane].get()
                if task is _END or stopping.is_set():
                    return
                sequence, prepared = task
                if start is not None and lane not in started:
                    with permits.held(-1):
                        start(lane)
                    started.add(lane)
                answer = work(lane, prepared, lambda: permits.held(sequence))
                done.put(("answer", sequence, lane, answer))
        except Stopped:
            return
        except BaseException as exc:   # noqa: BLE001 - re-raised in the caller's thread
            done.put(("failed", exc))

    threads = [threading.Thread(target=producer, name="conform-prepare", daemon=True)]
    threads += [threading.Thread(target=lane_loop, args=(lane,), name=f"conform-lane-{lane}", daemon=True)
                for lane in lanes]
    pending: dict[int, tuple[Any, set[str], dict[str, Any], int]] = {}
    produced = False

    def take(message: tuple) -> None:
        nonlocal produced
        kind = message[0]
        if kind == "failed":
            raise message[1]
        if kind == "produced":
            produced = True
            return
        if kind == "prepared":
            _, sequence, prepared, needed, size = message
            pending[sequence] = (prepared, set(needed), {}, size)   # queued before any lane has the case
        else:
            _, sequence, lane, answer = message
            pending[sequence][2][lane] = answer
        prepared, needed, answers, size = pending[sequence]
        if set(answers) >= needed:
            del pending[sequence]
            try:
                finish(prepared, answers)
            finally:
                bound.release(size)

    for thread in threads:
        thread.start()
    try:
        while not produced or pending:
            # A signal held here reaches the handler in force as the block ends, where no lock is held; the
            # run's handler raises KeyboardInterrupt (one that does not raise lets the loop go on).
            with interrupts.deferred() as signalled:
                while (not produced or pending) and not signalled:
                    try:
                        take(done.get(timeout=_POLL_S))
                    except queue.Empty:
                        pass
    except BaseException:
        stopping.set()
        cancel()
        raise
    finally:
        stopping.set()
        permits.close()
        with bound.lock:
            bound.lock.notify_all()
        for inbox in inboxes.values():
            inbox.put(_END)
        for thread in threads:
            thread.join()
