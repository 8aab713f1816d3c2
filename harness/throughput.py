"""``conform bench --throughput``: how fast whole runs go, against the lower bound, and the parent's memory.

Each figure comes from a real ``conform run`` in its own process (so its peak
memory is its own), whose report.json carries the ``timing`` record of Note
[Throughput] (``harness/timing.py``): results per second and the wall time over
the lower bound Σ worker CPU time ÷ cores. The parent's peak resident memory is
taken when that process ends (``peak_mib``: loading, running *and* writing the
reports; ``timing.parent_peak_mib`` is taken before the reports are written),
by running the command through ``probe`` (``ru_maxrss`` of the process
itself: the workers are other processes and are not counted).
The runs:

* ``default``: the default suite as ``make conform`` runs it (``cases/``,
  every backend, ``--mode both``);
* ``fuzz-S`` and ``fuzz-L``: S and L random conv2d_transpose cases
  (``conform fuzz 500 --seed 1``, ``--seed 2``, ...: files of ``FUZZ_FILE_CASES``,
  as a fuzz campaign writes them) on a few fast backends. Their whole-life
  peak memories, compared, say whether the parent's memory stays flat as a
  run grows (``memory_ratio``: L's peak over S's). Files of one size on both
  sides, because reading a case file costs memory in proportion to the file
  (the YAML node tree with every line mark), not to the suite.

Everything is written under ``OUT/throughput/<run>/`` (the case files and the
run's report set), and the figures into ``bench.json``'s ``throughput``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from harness.fuzz import generate
from harness.report.terminal import timing_text

FUZZ_BACKENDS = "numpy,numba,torch.functional"
#: ``python -c PROBE PEAK_FILE ARGS...``: ``conform ARGS...`` in this process, then its own peak resident memory
#: (``ru_maxrss``, KiB on Linux; the workers are not this process) written to PEAK_FILE, however it ended.
PROBE = """
import json, resource, runpy, sys
peak_file = sys.argv[1]
sys.argv = ["conform"] + sys.argv[2:]
try:
    runpy.run_module("harness", run_name="__main__")
finally:
    with open(peak_file, "w", encoding="utf-8") as f:
        json.dump({"peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}, f)
"""
FUZZ_FILE_CASES = 500


@dataclass(frozen=True)
class ThroughputRun:
    name: str
    paths: tuple[str, ...]       # case files or folders; a fuzz run's are generated
    backends: Optional[str]      # None: every backend
    mode: str = "forward"
    fuzz_cases: int = 0


def default_runs(small: int = 500, large: int = 5_000, suite: str = "cases") -> list[ThroughputRun]:
    return [ThroughputRun("default", (suite,), None, "both"),
            ThroughputRun(f"fuzz-{small}", (), FUZZ_BACKENDS, fuzz_cases=small),
            ThroughputRun(f"fuzz-{large}", (), FUZZ_BACKENDS, fuzz_cases=large)]


def _fuzz_files(folder: Path, count: int) -> list[str]:
    """``count`` fuzz cases in files of at most ``FUZZ_FILE_CASES`` (seeds 1, 2, ...: distinct ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, seed = [], 1
    while count > 0:
        n = min(count, FUZZ_FILE_CASES)
        path = folder / f"fuzz-{seed}.yaml"
        path.write_text(generate(n, seed), encoding="utf-8")
        paths.append(str(path))
        count -= n
        seed += 1
    return paths


def measure(run: ThroughputRun, out: Path, log: Callable[[str], None] = print) -> dict:
    """One run in a fresh ``conform`` process; its ``timing`` record plus what was run."""
    folder = out / "throughput" / run.name
    paths = list(run.paths) or _fuzz_files(folder / "cases", run.fuzz_cases)
    folder.mkdir(parents=True, exist_ok=True)
    peak_file = folder / "peak.json"
    peak_file.unlink(missing_ok=True)
    command = [sys.executable, "-c", PROBE, str(peak_file), "run", *paths, "--mode", run.mode, "--quiet",
               "--out", str(folder / "report")]
    if run.backends:
        command += ["--backends", run.backends]
    log(f"throughput {run.name}: conform {' '.join(command[4:])}")
    began = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True)
    row = {"run": run.name, "paths": paths if run.paths else f"{run.fuzz_cases} fuzz cases",
           "backends": run.backends or "all", "mode": run.mode, "exit_code": proc.returncode,
           "elapsed_s": round(time.monotonic() - began, 3)}
    if proc.returncode not in (0, 1):   # 1: the gate failed, which is a finding, not a broken measurement
        return {**row, "status": "failed", "reason": proc.stderr.strip() or proc.stdout.strip()[-2000:]}
    report = json.loads((folder / "report" / "report.json").read_text(encoding="utf-8"))
    peak = json.loads(peak_file.read_text(encoding="utf-8"))["peak_mib"]
    return {**row, "status": "ok", "gate_passed": report["gate"]["passed"], "peak_mib": peak,
            "timing": report.get("timing")}


def run_throughput(out: Path, runs: list[ThroughputRun], log: Callable[[str], None] = print) -> dict:
    rows = [measure(run, out, log) for run in runs]
    fuzz = [r for r in rows if r["run"].startswith("fuzz-") and r["status"] == "ok"]
    result = {"runs": rows}
    if len(fuzz) >= 2:
        small, large = fuzz[0]["peak_mib"], fuzz[-1]["peak_mib"]
        result["memory_ratio"] = round(large / small, 3)
    return result


def record(out: Path, bench: dict, runs: list[ThroughputRun], log: Callable[[str], None] = print) -> dict:
    """``bench`` (bench.json's content) with the throughput figures added, written back to bench.json."""
    from harness.report import atomic_write
    bench = {**bench, "throughput": run_throughput(out, runs, log)}
    atomic_write(out / "bench.json", json.dumps(bench, indent=1) + "\n")
    return bench


def lines(result: dict) -> list[str]:
    """The figures, one line per run, for the terminal."""
    out = []
    for r in result["runs"]:
        if r["status"] != "ok":
            out.append(f"{r['run']}: {r['status']}: {r.get('reason')}")
            continue
        t = r["timing"]
        out.append(f"{r['run']}: {timing_text(t)}; parent peak {r['peak_mib']:.0f} MiB "
                   f"({t['parent_peak_mib']:.0f} MiB before the reports)")
    if "memory_ratio" in result:
        out.append(f"parent peak memory, largest fuzz run ÷ smallest: {result['memory_ratio']:.2f}")
    return out
