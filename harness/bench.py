"""``conform bench``: time every backend on fixed shapes in one run, each in its own worker.

Each backend process warms up, then times its own native call (the same
``duration_ms`` as in report.json: no import, no data conversion) ``repeats``
times; we report the median, GFLOP/s, the ratio to the fastest *framework*
(TensorFlow, PyTorch, MindSpore) on that shape, and the fraction of this
machine's peak fp32 throughput. Backends take turns on each case, never two
at once, so they do not compete for the cores (Note [Turns]).

Note [Peak throughput]
----------------------
peak = cores × clock × (SIMD width / 32 bits) × 2 (an FMA is two flops) ×
FMA units per core. Width comes from the CPU flags (avx512f: 512 bits,
avx2/fma: 256, else 128), the clock from ``/proc/cpuinfo`` (the nominal
frequency a VM reports; turbo makes real peaks somewhat higher), cores from
``os.sched_getaffinity``. The number of FMA units is not visible from user
space: we assume 2 for AVX-512 server parts (Skylake-SP Gold/Platinum and
later) and 2 for AVX2 cores; ``CONFORM_FMA_UNITS`` overrides it.

Note [A quiet parent]
---------------------
The parent prepares each case's call (operands, and the oracle, which
``prepare`` computes) once a dtype, just before the first turn that needs
it (Note [Turns]), while no worker is timing. OpenBLAS's threads *spin* for up
to ~0.1 s after a product, so a parent that ran its oracle on them held a
core while the worker's first calls ran: numba's two-thread calls waited
whole 4 ms ticks for it, and its stall backoff then put most of a case on one
thread (conv2d b3 of benchmarks/: 10.4-11.3 ms, its one-thread time, against
5.4 once the parent was quiet; torch's calls waited too). So the parent
computes with BLAS on one thread, as ``conform run``'s parent does.

Note [The oracle's BLAS]
------------------------
The float64 oracle's products run on NumPy's OpenBLAS, which picks its
kernels by CPU when it loads, unless ``OPENBLAS_CORETYPE`` names them. Some
machines set that variable to an older kernel set (old OpenBLAS builds failed
on new CPUs): on an AMD EPYC (Zen 5) with ``OPENBLAS_CORETYPE=Haswell`` the
oracle's conv2d b1 took 6.40 ms against 5.38 with OpenBLAS's own choice
(SkylakeX), b3 18.1 against 13.9 ms. conform leaves the variable alone (it is
the user's); bench.json records the kernels (``blas``) and the table says
when the variable chose them, so that oracle ratios are read with it.

Note [Turns]
------------
This VM's speed moves by 20-80% between minutes for every backend, torch's
calls too. Backends timed one after another, each on all its cases, saw
different machines: the oracle's conv2d b4 of benchmarks/ took 2.75 ms in one
run while torch's, two minutes later, took 0.39 (0.63-0.8 and 0.24 on a quiet
host); passes over the backends (each pass one after another, sharing the
timed calls) only spread that over four minutes, and in 8 full runs the
in-house backends' worst ratio to torch moved between 3.3 and 5.3 (oracle)
and 0.92 and 1.49 (numba) on shapes whose typical ratios are 2.5-3.5 and
0.5-0.95. So the backends take turns on each case: ``--rounds`` rounds share
the timed calls (15 by default, one call a turn; 4 rounds would be 4, 4, 4,
3), each backend's turn is its own warm-up (Note [Steady state]) and its
share of calls, and each round starts one backend further down the list, so
that no backend is always first or last. Each worker starts on its first
turn and serves the whole bench (restarted on its next turn if a timeout,
crash or the memory limit ended it). A case's calls on every backend then
fall within the same stretch of time, and with one call a turn each
backend's calls are spread over all of it (with the defaults, one in every
fifteenth): every backend's median samples the same states of the host, as
Google Benchmark interleaves the repetitions of its benchmarks (there in a
random order) to cut run-to-run variance. With 4 rounds (four calls a turn),
five full runs gave numba's worst ratio on benchmarks/ as 0.89-1.11 and the
oracle's as 3.43-4.33 (conv2d b4: 1.05-1.59 ms by round against torch's
0.21-0.37), one backend's medians moving by up to ±50% from round to round.
bench.json keeps every timed call in round order (``times_ms``).

Turns were tried once before and dropped, for what the backends leave
behind: the frameworks' runtimes keep their threads spinning after a call
(TensorFlow's OpenMP, for up to 200 ms; OpenBLAS's for ~0.1 s then, before
the numpy worker made them sleep at once: Note [BLAS threads that sleep] in
``harness/backends/numpy_ref.py``), so the next backend shared the cores
with them, and numba's and the oracle's calls, which size their teams to the
cores other processes leave free (``harness/kernels/threads.py``,
``harness/kernels/oracle_threads.py``), ran on one thread (numba conv2d b1
1.79 against 0.9 ms, the oracle 8.6 against 4.5). Before each turn the bench
now waits until every other worker's CPU time (``/proc/PID/stat``, in clock
ticks of 10 ms) has stood still for ``QUIET_S`` (at most ``QUIET_MAX_S``;
``_Workers.wait_until_quiet``): the turn starts once the threads the
previous backends left spinning have gone to sleep. In a full run no wait
reached the cap, and the oracle's calls ran on two threads throughout (all
2,271 calls of a conv2d bench with four backends). Without ``/proc`` (not
Linux) the wait is ``QUIET_S``.

Those teams were also why the in-house backends' calls ran slower in full
runs than alone, and much of their spread. A team is sized from the 1-minute
load average and the tasks runnable at the instant of the call; through a
bench the load average stays at 2-3.6 (MindSpore's worker runs four threads
on the two cores through its turns) after every other worker has gone quiet,
so any task runnable at that instant halved a call: 11% of numba's calls in
a conv2d bench with every backend went to one thread, and with one call a
turn numba's conv2d b2 and b4 took 0.45 and 0.39 ms (1.32 and 1.24× torch),
the oracle's 1.54 and 1.32 (4.5 and 4.2×). Turns make sure that nothing else
computes, so the bench starts its workers with ``CONFORM_ALL_THREADS=1`` and
the in-house calls take every thread, as torch's do: 0.28 and 0.21 ms (0.95
and 0.76×), the oracle's 0.93 and 0.80 (3.2 and 2.9×) in the next run.
``conform run`` keeps the adaptive teams: there the other workers do
compute. Full runs with one call a turn, numba's and the oracle's worst
ratio to torch: 1.57 and 7.28, 1.31 and 5.49 with adaptive teams; 0.89 and
3.18, 0.88 and 3.61 with every thread.

Note [Steady state]
-------------------
A backend's first calls on a new shape are slower than its later ones, for
a while after the first-call costs (compiling, page faults) are paid: on
this VM a Numba loop that doubles a 6.4 MB array into a new one took
0.69 ms on its third call in a fresh process and 0.47 ms from its tenth on,
with no page faults after the second. conv2d b5 (depthwise, 6.4 MB in and
out) went 2.2 → 0.8 ms over the 12 calls after 3 warm-ups, on numba, the
same whether or not both cores had spun for 0.2 s just before (so not the
clock); 3 warm-up calls left that ramp in the median of 15 (numba
1.26-1.30× torch in two runs, 0.69-0.88× after 15 warm-ups). So a backend's
first turn on a case warms up for at least ``warmup`` calls *and*
``WARMUP_S`` seconds (``--warmup``, ``--warmup-time``), as timeit's
autorange and pytest-benchmark's warm-up do: the timings are of the steady
state a model's layer runs in, the same rule for every backend. Its later
turns only have to wake it up after the other backends' turns: at least one
call and ``REWARM_S`` (``--rewarm-time``). After 0.4 s idle, numba's conv2d
b4 took 0.62 ms on its first call, 0.34 on its fourth and 0.27 from its
eighth on, torch's 0.68, 0.40 and 0.35: a few milliseconds of calls; 50 ms
is many of them on the small shapes and at least a call on the large ones.
A worker that a failure ended restarts fresh on its next turn, which then
warms up as a first turn.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from pathlib import Path
from typing import Optional

from threadpoolctl import threadpool_limits

from harness import cpu, envs, ops
from harness.backends import backend_class
from harness.cases import Case
from harness.kernels.oracle_threads import ALL_THREADS
from harness.report import atomic_write
from harness.runner import prepare
from harness.worker import CpuProgress, stop_all, worker_for

ORACLE_DTYPE = {"numpy": "float64"}
WARMUP_S = 0.2   # the least warm-up of a backend's first turn on a case, besides the count: Note [Steady state]
REWARM_CALLS, REWARM_S = 1, 0.05   # ... and of its later turns (`--rewarm-time`)
QUIET_S = 0.03   # how long the other workers must have used no CPU before a turn (Note [Turns])
QUIET_MAX_S = 1.0
QUIET_POLL_S = 0.01


def peak_gflops() -> dict:
    flags, mhz = cpu.flags(), cpu.fields().get("cpu MHz")
    width = 512 if "avx512f" in flags else 256 if ("avx2" in flags or "avx" in flags) else 128
    fma_units = int(os.environ.get("CONFORM_FMA_UNITS", "2"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ghz = (float(mhz) if mhz else 2000.0) / 1000
    lanes = width // 32
    return {"gflops": cores * ghz * lanes * 2 * fma_units, "cores": cores, "ghz": ghz,
            "simd_bits": width, "fma_units": fma_units}


def blas_kernels() -> dict:
    """The BLAS the float64 oracle's products run on (Note [The oracle's BLAS]): NumPy's, as the ``numpy``
    worker loads it with this environment."""
    import numpy as np
    from threadpoolctl import threadpool_info
    np.ones((2, 2)) @ np.ones((2, 2))                   # loads the library (threadpoolctl sees loaded ones)
    found = next((info for info in threadpool_info() if info.get("user_api") == "blas"), {})
    return {"library": found.get("internal_api"), "version": found.get("version"),
            "kernels": found.get("architecture"), "coretype_variable": os.environ.get("OPENBLAS_CORETYPE")}


def flops(case: Case) -> float:
    """Floating-point operations of one call, as the case's operator counts them (``OpSpec.flops``)."""
    return ops.get(case.op).flops(case.resolved)


def run_bench(cases: list[Case], backend_ids: list[str], out: Path, warmup: int = 3, repeats: int = 15,
              timeout_s: float = 600.0, log=print, warmup_s: float = WARMUP_S, rounds: int = 15,
              rewarm_s: float = REWARM_S) -> dict:
    peak = peak_gflops()
    # (backend, case id) -> ms of every timed call, why there are none, or both (timed calls, then a failure)
    answers: dict = {}
    total = min(rounds, repeats)
    warm_ups = (warmup, warmup_s), (min(warmup, REWARM_CALLS), rewarm_s)      # (calls, s): first turn, later ones
    with _Workers(log) as workers:
        for case in cases if backend_ids else ():
            calls: dict = {}         # dtype -> the case's call, prepared once for every round
            for k in range(total):  # backends take turns on the case (Note [Turns])
                count = repeats // total + (k < repeats % total)          # 15 in 4 rounds: 4, 4, 4, 3
                start = k % len(backend_ids)
                for bid in backend_ids[start:] + backend_ids[:start]:
                    _take_turn(workers, bid, case, calls, count, answers, warm_ups, k == 0, timeout_s, log,
                               f"round {k + 1}/{total}")
            for bid in backend_ids:
                times = answers.get((bid, case.id))
                if isinstance(times, list) and times:
                    log(f"{bid:18} {case.id:34} {statistics.median(times):9.2f} ms  (median of {len(times)})")
    rows: list[dict] = []
    for bid in backend_ids:
        for case in cases:
            dtype = ORACLE_DTYPE.get(bid, case.dtype)
            row = {"case": case.id, "backend": bid, "dtype": dtype, "gflop": flops(case) / 1e9}
            answer = answers.get((bid, case.id), {"status": "skipped", "reason": "no timed calls asked for"})
            if isinstance(answer, tuple):           # timed calls, then a failure that ended its turns
                answer, row["stopped"] = answer
            if isinstance(answer, list):
                median = statistics.median(answer)
                row.update(status="ok", median_ms=median, min_ms=min(answer), repeats=len(answer),
                           gflops=row["gflop"] / (median / 1e3), times_ms=answer)
                row["peak_fraction"] = row["gflops"] / peak["gflops"]
            else:
                row.update(answer)
            rows.append(row)
    for case in cases:
        same = [r for r in rows if r["case"] == case.id and r["status"] == "ok"]
        frameworks = [r["median_ms"] for r in same if not backend_class(r["backend"]).in_house]
        fastest = min(frameworks) if frameworks else None
        torch = next((r["median_ms"] for r in same if r["backend"] == "torch.functional"), None)
        for r in same:
            r["ratio_to_fastest_framework"] = r["median_ms"] / fastest if fastest else None
            r["ratio_to_torch"] = r["median_ms"] / torch if torch else None
    result = {"schema": "conform.bench/3", "peak": peak, "blas": blas_kernels(), "warmup": warmup,
              "warmup_s": warmup_s, "rewarm": warm_ups[1][0], "rewarm_s": rewarm_s, "repeats": repeats,
              "rounds": total, "results": rows}
    atomic_write(out / "bench.json", json.dumps(result, indent=1) + "\n")
    return result


def _take_turn(workers: "_Workers", bid: str, case: Case, calls: dict, repeats: int, answers: dict,
               warm_ups: tuple[tuple[int, float], tuple[int, float]], first_turn: bool, timeout_s: float, log,
               label: str) -> None:
    """Backend ``bid``'s turn (``label``) on ``case``: once the other workers are quiet, a warm-up of at least
    (calls, seconds) ``warm_ups[0]`` on its first turn, ``warm_ups[1]`` on a later one, then ``repeats`` more
    timed calls into ``answers``. A backend that fails on the case (or is unavailable) takes no more turns on
    it: a hung framework costs its timeout once, not once a round. Its timed calls so far are kept (the row's
    ``repeats`` says how many, ``stopped`` why there are no more), else the row says why it has none."""
    key = (bid, case.id)
    if not isinstance(answers.get(key, []), list):
        return
    worker, reason = workers.get(bid)
    if worker is not None:
        dtype = ORACLE_DTYPE.get(bid, case.dtype)
        if dtype not in calls:
            calls[dtype] = _call(case, dtype)
        # A first turn reaches the steady state, a later one only wakes the backend up (Note [Steady state]),
        # unless its worker restarts for this turn: a fresh process.
        warm = warm_ups[0] if first_turn or not worker.alive() else warm_ups[1]
        workers.wait_until_quiet(bid)
        answer = worker.bench(calls[dtype], warm[0], repeats, timeout_s, warm[1])
        if isinstance(answer, list):
            answers[key] = answers.get(key, []) + answer
            return
        failure = {"status": getattr(answer, "status", "failed"),
                   "reason": getattr(answer, "detail", None) or getattr(answer, "reason", str(answer))}
    else:
        failure = {"status": "skipped", "reason": reason}
    log(f"{bid:18} {case.id:34} {failure['status']}: {failure['reason']}  ({label})")
    answers[key] = (answers[key], failure) if answers.get(key) else failure


class _Workers:
    """Every backend's worker for the whole bench, started on its first turn, stopped at the end (killed if the
    bench is interrupted)."""

    def __init__(self, log):
        self.log = log
        self.started: dict = {}      # backend id -> (Worker or None, why there is none)

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, kind, *exc) -> None:
        try:
            stop_all((worker for worker, _ in self.started.values() if worker is not None), kill=kind is not None)
        except Exception as error:      # noqa: BLE001 - the timings are whole: bench.json is still written
            self.log(f"stopping the workers: {error}")

    def get(self, bid: str):
        """The backend's started worker and None, or None and why it cannot run."""
        if bid not in self.started:
            self.started[bid] = self._start(bid)
        return self.started[bid]

    def _start(self, bid: str):
        available, reason = envs.availability(bid)
        if not available:
            return None, reason
        try:
            worker = worker_for(bid, say=self.log)
        except envs.BuildError as exc:
            return None, f"its environment could not be built: {exc}"
        # Nothing else computes during a turn: the in-house kernels take every thread (Note [Turns]).
        worker.launch = dataclasses.replace(worker.launch, variables={**worker.launch.variables, ALL_THREADS: "1"})
        try:
            started = worker.start()
        except BaseException:           # interrupted while it started: it is not in ``started`` yet
            worker.stop(kill=True)
            raise
        return (worker, None) if started else (None, worker.setup_error)

    def wait_until_quiet(self, bid: str) -> float:
        """Wait until the CPU time of every worker but ``bid``'s has stood still for ``QUIET_S`` (at most
        ``QUIET_MAX_S``): threads a runtime leaves spinning after its turn would share the cores with this one
        (Note [Turns]). The seconds waited."""
        others = {other: CpuProgress(worker) for other, (worker, _) in self.started.items()
                  if other != bid and worker is not None}
        if not others:
            return 0.0
        began = time.monotonic()
        while True:
            time.sleep(QUIET_POLL_S)
            moving = {other for other, progress in others.items() if _still(progress, began) < QUIET_S}
            if not moving:
                break
            if time.monotonic() - began > QUIET_MAX_S:
                self.log(f"{bid:18} {', '.join(sorted(moving))} still busy after {QUIET_MAX_S:g} s; timing anyway")
                break
        return time.monotonic() - began


def _still(progress: CpuProgress, began: float) -> float:
    """How long the worker's CPU time has stood still; without ``/proc`` (not Linux), since the wait began: then
    the wait is ``QUIET_S``."""
    still = progress.still_for()
    return time.monotonic() - began if still is None else still


def _call(case: Case, dtype: str):
    """The case's call in ``dtype``, prepared with BLAS on one thread (Note [A quiet parent])."""
    original = case.common.dtype
    case.common.dtype = dtype
    try:
        with threadpool_limits(1, user_api="blas"):
            return prepare(case)[0]
    finally:
        case.common.dtype = original


def print_table(result: dict, console) -> None:
    from rich.table import Table
    peak = result["peak"]
    table = Table(title=f"conform bench: median of {result['repeats']} calls; peak fp32 "
                        f"{peak['gflops']:.0f} GFLOP/s ({peak['cores']} cores × {peak['ghz']:.2f} GHz × "
                        f"{peak['simd_bits'] // 32} lanes × 2 × {peak['fma_units']} FMA units)")
    for col in ("shape", "backend", "dtype", "median ms", "GFLOP/s", "× fastest fw", "× torch", "% peak"):
        table.add_column(col, justify="left" if col in ("shape", "backend", "dtype") else "right")
    for r in result["results"]:
        if r["status"] != "ok":
            table.add_row(r["case"], r["backend"], r["dtype"], r["status"], "", "", "", "")
            continue

        def fmt(v: Optional[float], spec: str) -> str:
            return "-" if v is None else format(v, spec)
        median = f"{r['median_ms']:.2f}"
        if r.get("stopped"):            # fewer timed calls than asked: a failure ended its turns on the case
            median += f" ({r['repeats']} calls, then {r['stopped']['status']})"
        table.add_row(r["case"], r["backend"], r["dtype"], median, f"{r['gflops']:.1f}",
                      fmt(r["ratio_to_fastest_framework"], ".2f"), fmt(r["ratio_to_torch"], ".2f"),
                      f"{100 * r['peak_fraction']:.1f}")
    console.print(table)
    blas = result.get("blas") or {}
    if blas.get("library"):
        line = f"oracle BLAS: {blas['library']} {blas.get('version') or ''}, {blas.get('kernels')} kernels"
        if blas.get("coretype_variable"):
            line += (f" (OPENBLAS_CORETYPE={blas['coretype_variable']} is set in the environment: the oracle's"
                     " times are those of these kernels, not necessarily of the CPU's widest)")
        console.print(line)
