"""Quietness at scale: random valid cases on every backend, every non-green result explained.

Usage::

    .venv/bin/python benchmarks/quiet.py [--count 250] [--seeds 1,2,3,4] [--backends ...] [--ops OP,...]
                                         [--mode forward|backward|both]
                                         [--registry cases/known_divergences.yaml] [--out DIR]

``make quiet`` runs it with the defaults: ``conform fuzz COUNT --seed S`` for
each seed (1,000 cases over four seeds, all four dtypes, both layouts,
groups, dilation, every padding form), one ordinary ``conform run`` over
those files on every installed backend with the project's registry, then
reads ``report.json``. A result is *explained* when its verdict keeps the
gate green (pass, unsupported, skipped, xfail), i.e. it passed or a registry
entry recognised it. Prints the number of cases and results, the run time,
verdicts per backend and every unexplained result (backend, case, verdict,
reason, parameters); exits 1 if there is any, 0 otherwise, 2 on bad usage.
``--ops`` fuzzes several operators (COUNT cases per seed each); ``--mode
both`` judges every gradient too (``make quiet-gradients``).

Slow (minutes: five frameworks, one worker each), so it is not part of
``make test``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.compare import GREEN  # noqa: E402
from harness import ops  # noqa: E402
from harness.fuzz import generate  # noqa: E402

#: The parameters that tell a reader what kind of call an unexplained result is.
SHOWN = ("input", "kernel_size", "stride", "dilation", "groups", "padding", "output_padding", "output_shape",
         "bias", "layout")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="benchmarks/quiet.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=250, help="cases per seed (default 250)")
    parser.add_argument("--seeds", default="1,2,3,4", help="comma-separated fuzz seeds (default 1,2,3,4)")
    parser.add_argument("--backends", default=None, help="backend ids (default: every installed backend)")
    parser.add_argument("--registry", default=str(ROOT / "cases" / "known_divergences.yaml"))
    parser.add_argument("--out", default=None, help="report folder (default: a temporary folder)")
    parser.add_argument("--ops", default=None, help="comma-separated operators (default: conv2d_transpose)")
    parser.add_argument("--mode", choices=("forward", "backward", "both"), default="forward",
                        help="forward outputs, gradients or both (default: forward)")
    args = parser.parse_args(argv)
    args.ops = [o.strip() for o in (args.ops or "conv2d_transpose").split(",") if o.strip()]
    unknown = [o for o in args.ops if o not in ops.OPS]
    if unknown:
        parser.error(f"--ops: unknown operator(s) {', '.join(unknown)}; known: {', '.join(ops.OPS)}")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: not a comma-separated list of integers: {args.seeds!r}")
    if args.count < 1 or not args.seeds:
        parser.error("--count must be ≥ 1 and --seeds non-empty")
    return args


def run(args, out: Path) -> tuple[dict, float]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for op in args.ops:
        for seed in args.seeds:
            path = out / f"fuzz-{op}-{seed}.yaml"
            path.write_text(generate(args.count, seed, op=op))
            files.append(str(path))
    command = [sys.executable, "-m", "harness", "run", *files, "--registry", args.registry,
               "--out", str(out / "report"), "--quiet", "--mode", args.mode]
    if args.backends:
        command += ["--backends", args.backends]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    report = out / "report" / "report.json"
    if done.returncode == 2 or not report.exists():
        sys.exit(f"conform run failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(report.read_text()), seconds


def summarise(results: list[dict], cases: int, seconds: float) -> list[dict]:
    """Print the figures; return the unexplained results."""
    unexplained = [r for r in results if r["verdict"] not in GREEN]
    print(f"cases: {cases}   results: {len(results)}   run time: {seconds:.0f} s")
    table = collections.defaultdict(collections.Counter)
    for r in results:
        table[r["backend"]][r["verdict"]] += 1
    for backend, counts in table.items():
        print(f"  {backend:18} " + "  ".join(f"{v} {n}" for v, n in sorted(counts.items())))
    kinds = collections.Counter((r["backend"], r["verdict"]) for r in unexplained)
    print(f"unexplained: {len(unexplained)}" + "".join(f"\n  {b} {v}: {n}" for (b, v), n in sorted(kinds.items())))
    for r in unexplained:
        shown = " ".join(f"{k}={r['params'][k]}" for k in SHOWN if r["params"].get(k) not in (None, False))
        gradient = f" ∂{r['gradient']}" if r.get("gradient") else ""
        print(f"  {r['verdict']} {r['backend']} {r['case']}{gradient} {r['dtype']} {shown}: {r.get('reason', '')}")
    return unexplained


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.out:
        report, seconds = run(args, Path(args.out))
    else:
        with tempfile.TemporaryDirectory(prefix="conform-quiet-") as tmp:
            report, seconds = run(args, Path(tmp))
    unexplained = summarise(report["results"], args.count * len(args.seeds) * len(args.ops), seconds)
    if report.get("incomplete"):
        print("the run is incomplete: not every case ran")
    quiet = not unexplained and not report.get("incomplete")
    print("quiet: PASS" if quiet else "quiet: FAIL")
    return 0 if quiet else 1


if __name__ == "__main__":
    sys.exit(main())
