"""``conform bench``: time every backend on fixed shapes in one run, each in its own worker.

Each backend process warms up, then times its own native call (the same
``duration_ms`` as in report.json: no import, no data conversion) ``repeats``
times; we report the median, GFLOP/s, the ratio to the fastest *framework*
(TensorFlow, PyTorch, MindSpore) on that shape, and the fraction of this
machine's peak fp32 throughput. Backends run one after another so they do not
compete for the two cores.

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
The parent prepares each call (operands, and the oracle, which ``prepare``
computes) just before a worker times it. OpenBLAS's threads *spin* for up
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

Note [Backends one after another]
---------------------------------
This VM's speed drifts by tens of percent over seconds (other tenants of the
host), so a backend timed a minute after torch can see another machine: the
oracle's ratio on conv2d b4 of benchmarks/ was 2.4 in one run and 4.1 in the
next. Taking turns on each case (every worker started first, one timed call
per backend per round, 10 ms of untimed calls after each switch) evened that
out with three backends, and was dropped with all ten: the frameworks'
runtimes keep their threads spinning after a call (TensorFlow's OpenMP, for
up to 200 ms), the turns kept the 1-minute load at 3.5, and numba's and the
oracle's calls, which size their teams to the cores other processes leave
free (``harness/kernels/threads.py``, Note [Oracle threads]), ran on one
thread (numba conv2d b1 1.79 against 0.9 ms, the oracle 8.6 against 4.5).
So each backend still runs all its cases alone, and ratios are read over
two runs (``make bench`` twice).

Note [Passes]
-------------
One backend after another still leaves each backend's calls at their own
minutes of the run, and this VM's speed moves by 20-80% between minutes
for every backend (torch's medians too): in one conform bench the oracle's
conv2d b4 took 2.75 ms while torch's, two minutes later, took 0.39 (0.63-0.8
and 0.24 on a quiet host). So the bench makes several passes over the
backends (``--passes``, 4 by default) and shares the timed calls between
them (15: 4, 4, 4, 3), each pass after its own warm-up; a median is over
every pass's calls. A backend's calls are then a pass apart (2.5 minutes
for the whole benchmarks/ folder), and a slow minute falls on a quarter of
them rather than all. Every pass takes the same order: with every other pass
reversed (an ABBA design, which cancels a linear drift), the first and last
backends had two passes back to back, and a slow stretch then took half
their calls (measured: the oracle's conv2d b4 0.68, 1.00, 1.41, 0.59 ms in
four passes, the middle two adjacent, against torch's 0.20-0.30). Workers
start once a pass; the calls timed stay ``repeats``.

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
1.26-1.30× torch in two runs, 0.69-0.88× after 15 warm-ups). So each case and backend warms up for
at least ``warmup`` calls *and* ``WARMUP_S`` seconds (``--warmup``,
``--warmup-time``), as timeit's autorange and pytest-benchmark's warm-up
do: the timings are of the steady state a model's layer runs in, the same
rule for every backend.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Optional

from threadpoolctl import threadpool_limits

from harness import cpu, envs, ops
from harness.backends import backend_class
from harness.cases import Case
from harness.report import atomic_write
from harness.runner import prepare
from harness.worker import worker_for

ORACLE_DTYPE = {"numpy": "float64"}
WARMUP_S = 0.2   # the least warm-up per case and backend, besides the count: Note [Steady state]


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
              timeout_s: float = 600.0, log=print, warmup_s: float = WARMUP_S, passes: int = 4) -> dict:
    peak = peak_gflops()
    # Passes over the backends, sharing the timed calls (Note [Passes]).
    answers: dict = {}               # (backend, case id) -> ms of every timed call, or why there are none
    total = min(passes, repeats)
    for k in range(total):
        count = repeats // passes + (k < repeats % passes)          # 15 in 4 passes: 4, 4, 4, 3
        for bid in backend_ids:
            _time_backend(bid, cases, count, answers, warmup, timeout_s, warmup_s, log, f"pass {k + 1}/{total}")
    rows: list[dict] = []
    for bid in backend_ids:
        for case in cases:
            dtype = ORACLE_DTYPE.get(bid, case.dtype)
            row = {"case": case.id, "backend": bid, "dtype": dtype, "gflop": flops(case) / 1e9}
            answer = answers.get((bid, case.id), {"status": "skipped", "reason": "no timed calls asked for"})
            if isinstance(answer, list):
                median = statistics.median(answer)
                row.update(status="ok", median_ms=median, min_ms=min(answer), repeats=len(answer),
                           gflops=row["gflop"] / (median / 1e3))
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
    result = {"schema": "conform.bench/1", "peak": peak, "blas": blas_kernels(), "warmup": warmup,
              "warmup_s": warmup_s, "repeats": repeats, "passes": total, "results": rows}
    atomic_write(out / "bench.json", json.dumps(result, indent=1) + "\n")
    return result


def _time_backend(bid: str, cases: list[Case], repeats: int, answers: dict, warmup: int, timeout_s: float,
                  warmup_s: float, log, label: str) -> None:
    """One pass (``label``) of backend ``bid`` over ``cases`` in its own worker: ``repeats`` more timed calls
    each into ``answers``. A case with no timed call yet that fails (or whose backend is unavailable) records
    why and is not tried again; a failure after some timed calls keeps them (the row's ``repeats`` says how
    many) and is logged."""
    cases = [case for case in cases if isinstance(answers.get((bid, case.id), []), list)]
    if not cases:
        return
    available, reason = envs.availability(bid)
    worker = None
    if available:
        try:
            worker = worker_for(bid, say=log)
        except envs.BuildError as exc:
            available, reason = False, f"its environment could not be built: {exc}"
    if worker is not None and not worker.start():
        available, reason = False, worker.setup_error
    try:
        for case in cases:
            key = (bid, case.id)
            if available:
                answer = worker.bench(_call(case, ORACLE_DTYPE.get(bid, case.dtype)), warmup, repeats, timeout_s,
                                      warmup_s)
                if isinstance(answer, list):
                    answers[key] = answers.get(key, []) + answer
                    log(f"{bid:18} {case.id:34} {statistics.median(answer):9.2f} ms  ({label})")
                    continue
                failure = {"status": getattr(answer, "status", "failed"),
                           "reason": getattr(answer, "detail", None) or getattr(answer, "reason", str(answer))}
            else:
                failure = {"status": "skipped", "reason": reason}
            log(f"{bid:18} {case.id:34} {failure['status']}: {failure['reason']}  ({label})")
            if not answers.get(key):
                answers[key] = failure
    finally:
        if worker is not None:
            worker.stop()


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
        table.add_row(r["case"], r["backend"], r["dtype"], f"{r['median_ms']:.2f}", f"{r['gflops']:.1f}",
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
