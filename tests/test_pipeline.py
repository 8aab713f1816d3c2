"""The runner's schedule (harness/pipeline.py): slots, lanes, the window, failures and interrupts.

The work here is plain Python (events and counters), so every property is checked exactly: how many
calls ran at once, in what order lanes took cases, how many prepared cases were held.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from harness import interrupts
from harness.pipeline import Slots, Stopped, run_pipeline


class Recorder:
    """Counts concurrent work and keeps what happened, from any thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.order: dict[str, list[int]] = {}
        self.finished: list[int] = []

    def work(self, lane, item, slot, seconds=0.002):
        with slot():
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(seconds)
            with self.lock:
                self.running -= 1
                self.order.setdefault(lane, []).append(item)
        return (lane, item)


def test_every_case_is_finished_once_with_every_lanes_answer():
    rec = Recorder()
    got = {}

    def finish(item, answers):
        assert item not in got
        got[item] = answers

    lanes = ["a", "b", "c"]
    run_pipeline(range(20), prepare=lambda i: i, lanes_of=lambda i: lanes if i % 2 else ["a"],
                 work=rec.work, finish=finish, lanes=lanes, slots=2)
    assert sorted(got) == list(range(20))
    assert all(set(answers) == (set(lanes) if i % 2 else {"a"}) for i, answers in got.items())
    assert got[3]["b"] == ("b", 3)
    # Each lane takes its cases in order.
    assert rec.order["a"] == list(range(20))
    assert rec.order["b"] == [i for i in range(20) if i % 2]


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_never_more_calls_at_once_than_slots(slots):
    rec = Recorder()
    lanes = [f"l{i}" for i in range(6)]
    run_pipeline(range(12), prepare=lambda i: i, lanes_of=lambda i: lanes, work=rec.work,
                 finish=lambda *a: None, lanes=lanes, slots=slots)
    assert rec.most == slots


def test_cases_with_nothing_to_run_are_skipped_and_empty_ones_finish():
    finished = []
    run_pipeline(range(6), prepare=lambda i: None if i == 2 else i, lanes_of=lambda i: [] if i == 4 else ["a"],
                 work=lambda lane, i, slot: i, finish=lambda i, answers: finished.append((i, answers)),
                 lanes=["a"])
    assert sorted(finished) == [(0, {"a": 0}), (1, {"a": 1}), (3, {"a": 3}), (4, {}), (5, {"a": 5})]


def test_a_fast_lane_runs_ahead_of_a_slow_one_within_the_window():
    """The fast lane does not wait for the slow one at every case, but no further than the window."""
    held = []
    window = 4
    lock = threading.Lock()
    current = [0]

    def prepare(i):
        with lock:
            current[0] += 1
            held.append(current[0])
        return i

    def work(lane, i, slot):
        with slot():
            time.sleep(0.02 if lane == "slow" else 0.0)
        return i

    def finish(i, answers):
        with lock:
            current[0] -= 1

    lead = []   # for each fast-lane call: how many cases it is ahead of the slow lane's finished ones
    slow_done = [0]

    def work_seen(lane, i, slot):
        answer = work(lane, i, slot)
        with lock:
            if lane == "slow":
                slow_done[0] += 1
            else:
                lead.append(i - slow_done[0])
        return answer

    run_pipeline(range(12), prepare=prepare, lanes_of=lambda i: ["fast", "slow"], work=work_seen,
                 finish=finish, lanes=["fast", "slow"], slots=2, window=window)
    assert max(held) == window   # a case is admitted before it is prepared: the producer holds no extra one
    # The fast lane ran ahead (it did not wait for the slow lane at every case), but never past the window.
    assert max(lead) == window - 1


def test_the_memory_budget_bounds_the_window_but_always_admits_one_case():
    holding = []
    lock = threading.Lock()
    bytes_held = [0]

    def prepare(i):   # what a prepared case holds is allocated here
        with lock:
            bytes_held[0] += cost(i)
            holding.append(bytes_held[0])
        return i

    def cost(i):
        return 600 if i == 3 else 100

    def work(lane, i, slot):
        time.sleep(0.002)
        return i

    def finish(i, answers):
        with lock:
            bytes_held[0] -= cost(i)

    run_pipeline(range(8), prepare=prepare, lanes_of=lambda i: ["a"], work=work, finish=finish, lanes=["a"],
                 window=100, budget=250, cost=cost)
    # Never more than the budget's worth of prepared cases, the one being prepared included, except a single
    # case larger than the budget, alone.
    assert 600 in holding and all(held <= 250 or held == 600 for held in holding), holding


def test_slots_go_to_the_oldest_case_first():
    slots = Slots(1)
    order = []
    gate = threading.Event()

    def hold():
        with slots.held(0):
            gate.wait()

    first = threading.Thread(target=hold)
    first.start()
    time.sleep(0.05)

    def waiter(priority):
        with slots.held(priority):
            order.append(priority)

    threads = [threading.Thread(target=waiter, args=(p,)) for p in (5, 2, 9, 1)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    gate.set()
    for t in threads + [first]:
        t.join()
    assert order == [1, 2, 5, 9]


def test_closed_slots_release_their_waiters():
    slots = Slots(1)
    outcome = []

    def waiter():
        try:
            with slots.held(0):
                outcome.append("ran")
        except Stopped:
            outcome.append("stopped")

    with slots.held(0):
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.05)
        slots.close()
        t.join(5)
    assert outcome == ["stopped"]


def test_a_failure_in_a_lane_stops_the_run_and_is_raised():
    started = []

    def work(lane, i, slot):
        started.append(i)
        if i == 3:
            raise ValueError("adapter bug")
        with slot():
            time.sleep(0.001)
        return i

    with pytest.raises(ValueError, match="adapter bug"):
        run_pipeline(range(1000), prepare=lambda i: i, lanes_of=lambda i: ["a"], work=work,
                     finish=lambda *a: None, lanes=["a"], window=4)
    assert len(started) < 20


def test_a_failure_while_preparing_is_raised():
    def prepare(i):
        if i == 2:
            raise RuntimeError("oracle bug")
        return i

    with pytest.raises(RuntimeError, match="oracle bug"):
        run_pipeline(range(5), prepare=prepare, lanes_of=lambda i: ["a"], work=lambda lane, i, slot: i,
                     finish=lambda *a: None, lanes=["a"])


def test_an_interrupt_cancels_the_calls_in_flight_and_propagates():
    cancelled = threading.Event()

    def work(lane, i, slot):
        with slot():
            cancelled.wait(10)   # a call that only ends when cancelled
        return i

    def finish(i, answers):
        raise KeyboardInterrupt   # as Ctrl-C in the caller's thread

    def slow_work(lane, i, slot):
        if i == 0:
            return i
        return work(lane, i, slot)

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(range(5), prepare=lambda i: i, lanes_of=lambda i: ["a", "b"] if i else ["a"],
                     work=slow_work, finish=finish, lanes=["a", "b"], cancel=cancelled.set)
    assert cancelled.is_set()
    assert time.monotonic() - began < 5


def test_start_runs_once_per_lane_before_its_first_case():
    starts = []
    seen = []

    def start(lane):
        starts.append(lane)

    def work(lane, i, slot):
        assert lane in starts
        seen.append((lane, i))
        return i

    run_pipeline(range(4), prepare=lambda i: i, lanes_of=lambda i: ["a", "b"] if i >= 2 else ["a"],
                 work=work, finish=lambda *a: None, lanes=["a", "b", "c"], start=start)
    assert sorted(starts) == ["a", "b"]   # "c" had no case: never started


def test_a_permit_freed_with_another_goes_to_the_next_waiter_at_once():
    """Two calls end together: the oldest waiter takes one permit and the next must take the other then, not
    when the oldest's call ends (a waiter woken before the oldest took its permit saw it still first in line).
    Whether that waiter looks first is up to the scheduler, so the race is set up several times."""
    for _ in range(10):
        slots = Slots(2)
        with slots._lock:
            slots._free = 0                 # both permits held by calls in flight
        release_oldest, younger_ran = threading.Event(), threading.Event()

        def waiter(priority, then):
            with slots.held(priority):
                then()

        younger = threading.Thread(target=waiter, args=(2, younger_ran.set))
        younger.start()
        while len(slots._waiting) < 1:
            time.sleep(0.001)
        oldest = threading.Thread(target=waiter, args=(1, lambda: release_oldest.wait(30)))
        oldest.start()
        while len(slots._waiting) < 2:
            time.sleep(0.001)
        with slots._lock:                   # the two calls end at the same moment
            slots._free += 2
            slots._lock.notify_all()
        try:
            assert younger_ran.wait(10), "a free permit stayed unused while a waiter slept"
        finally:
            release_oldest.set()
            oldest.join()
            younger.join()


@pytest.fixture
def handlers():
    """The test's SIGINT/SIGTERM handlers and ``interrupts``' state, put back afterwards."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    state = dict(interrupts._state)
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    interrupts._state.update(state)


def test_a_signal_is_raised_at_the_top_of_the_loop_not_inside_a_case_being_finished(handlers):
    # Note [Interrupts]: raised anywhere in the caller's thread, KeyboardInterrupt could leave a lock taken
    # (queue.Queue.get's) and the lanes waiting for ever; and a case half finished is half written.
    finished = []
    cancelled = threading.Event()

    def finish(i, answers):
        if i == 3:
            signal.raise_signal(signal.SIGINT)   # Ctrl-C while the case is being finished
            time.sleep(0.05)                     # a handler that raises would have raised by now
        finished.append(i)

    interrupts.install()
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(range(10**6), prepare=lambda i: i, lanes_of=lambda i: ["a"],
                     work=lambda lane, i, slot: i, finish=finish, lanes=["a"], cancel=cancelled.set)
    assert finished == [0, 1, 2, 3]   # case 3 finished whole, then the interrupt, before case 4
    assert cancelled.is_set() and interrupts.received() == 1


def test_a_signal_whose_handler_does_not_raise_lets_the_run_go_on(handlers):
    counted = []
    signal.signal(signal.SIGINT, lambda signum, frame: counted.append(signum))
    finished = []

    def finish(i, answers):
        if i == 2:
            signal.raise_signal(signal.SIGINT)
            assert counted == []                 # held: the handler runs at the top of the loop
        finished.append(i)

    run_pipeline(range(50), prepare=lambda i: i, lanes_of=lambda i: ["a"], work=lambda lane, i, slot: i,
                 finish=finish, lanes=["a"])
    assert counted == [signal.SIGINT] and sorted(finished) == list(range(50))


def test_an_error_while_a_signal_is_held_is_the_error_raised(handlers):
    """A case whose finishing fails after Ctrl-C: the failure is what the caller sees (the interrupt is
    counted), not a KeyboardInterrupt that would report it as an interruption."""
    def finish(i, answers):
        if i == 1:
            signal.raise_signal(signal.SIGINT)
            raise RuntimeError("the reporter broke")

    interrupts.install()
    with pytest.raises(RuntimeError, match="reporter broke"):
        run_pipeline(range(5), prepare=lambda i: i, lanes_of=lambda i: ["a"], work=lambda lane, i, slot: i,
                     finish=finish, lanes=["a"])
    assert interrupts.received() == 1
