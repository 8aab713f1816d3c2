"""The ``conform`` command line's arguments: the parser and the option types (DESIGN.md §6).

Every number and size is checked here, by an argparse type, before any case
file is read: a bad value is a one-line usage error (exit 2) naming the option
and its range. ``harness.cli`` owns what the commands do with the values.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

from harness.fuzz import MAX_CASES as FUZZ_MAX_CASES

EXIT_USAGE = 2
MAX_JOBS = 64   # each job may hold a framework worker's memory


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 too; keep its message, drop nothing
        self.print_usage(sys.stderr)
        print(f"conform: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="conform", description="Cross-framework conformance harness for DL operators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def paths(p):
        p.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases/)")
        p.add_argument("-k", dest="pattern", action="append", metavar="PATTERN",
                       help="only cases whose id contains PATTERN or matches it as a glob over the whole id "
                            "(only * and ? are special; brackets are literal); repeat to select more (OR). "
                            "A selection that matches no case is a usage error (exit 2)")
        p.add_argument("--registry", type=Path,
                       help="known-divergence registry (default: known_divergences.yaml in the first path's "
                            "folder or the nearest folder above it)")
        p.add_argument("--max-memory", type=_size, default=None, metavar="SIZE",
                       help="refuse cases estimated to need more (e.g. 4GiB, 512MiB); also each worker's "
                            "resident-memory limit (default: half of the memory available now)")

    run = sub.add_parser("run", help="run cases against backends and write reports")
    paths(run)
    run.add_argument("--backends", help="comma-separated backend ids or framework prefixes (default: all)")
    run.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports/)")
    run.add_argument("--shard", type=_shard_spec, metavar="K/N",
                     help="run the K-th of N shards (1-based) of the selected cases and claims, split by "
                          "estimated cost so shards take similar time (deterministic; `conform merge` joins "
                          "them); an empty shard (N larger than the number of cases) is a usage error")
    run.add_argument("--jobs", type=_bounded(int, 1, MAX_JOBS, "a count of calls"), default=min(2, os.cpu_count() or 1),
                     help="backend calls in flight at once (default: min(2, cores))")
    run.add_argument("--timeout", type=_bounded(float, 0.001, MAX_TIMEOUT_S, "seconds"), default=120.0, help="seconds per backend call (default: 120)")
    run.add_argument("--mode", choices=("forward", "backward", "both"),
                     help="forward outputs, gradients (vector-Jacobian products) or both, for every case "
                          "(default: each case's own `mode`, forward unless it says otherwise)")
    run.add_argument("--strict", action="store_true", help="xpass and stale registry entries fail the gate")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where the framework workers run: local subprocesses (default), or Ray actors placed "
                          "by each backend's declared resources (needs the optional extra `ray`)")
    run.add_argument("--address", metavar="ADDR",
                     help="with --executor ray: the Ray cluster to use, e.g. ray://head:10001 or auto "
                          "(default: a local Ray instance started for the run)")
    run.add_argument("--resume", action="store_true",
                     help="keep the results in OUT/results.jsonl whose case content and framework version are "
                          "unchanged; run every other pair")

    report = sub.add_parser("report", help="re-render report.html, junit.xml and summary.md from a report.json")
    report.add_argument("report", type=Path, help="a report.json written by `conform run`")
    report.add_argument("--out", type=Path, help="folder for the files (default: the report's folder)")
    diff = sub.add_parser("diff", help="results that became worse, better, new or gone; exit 1 if any got worse")
    diff.add_argument("old", type=Path, help="the baseline report.json (with --between: the one report)")
    diff.add_argument("new", type=Path, nargs="?", help="the report.json to compare with it")
    diff.add_argument("--between", nargs=2, metavar=("A", "B"),
                      help="compare two backends of one report, A as the baseline (e.g. a surface at two "
                           "versions: onnxruntime@1.31.1 onnxruntime@1.32.0)")
    diff.add_argument("--json", action="store_true", help="print the changes as JSON")

    merge = sub.add_parser("merge", help="join the report folders of `conform run --shard K/N` into one report set")
    merge.add_argument("shards", nargs="+", type=Path, metavar="OUT_DIR", help="the shards' --out folders")
    merge.add_argument("--out", type=Path, required=True, help="folder for the merged reports")
    merge.add_argument("--allow-partial", action="store_true",
                       help="merge even when shards are absent (the report is then marked incomplete and "
                            "never passes the gate)")
    merge.add_argument("--quiet", action="store_true", help="no summary table")

    paths(sub.add_parser("validate", help="check case files only"))
    listing = sub.add_parser("list", help="print expanded case ids")
    paths(listing)
    _op_option(listing, "only cases of this operator")
    backends = sub.add_parser("backends", help="list the backends: framework, version, environment, availability")
    backends.add_argument("--backends", help="only these ids or prefixes (ID@VERSION for another release)")
    backends.add_argument("--prune", action="store_true",
                          help="remove built environments (under .conform/envs) that none of the listed backends "
                               "uses: other versions, superseded pins")
    backends.add_argument("--prepare", action="store_true",
                          help="build the environments of the listed backends that need their own (uv, cached)")
    cov = sub.add_parser("coverage", help="values and value pairs the cases cover, and which backends ran them")
    cov.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases/)")
    cov.add_argument("--report", type=Path, help="a report.json saying which backend ran which case "
                                                 "(default: reports/report.json if it exists)")
    cov.add_argument("--summary", action="store_true", help="per parameter pair totals only, not every pair")
    cov.add_argument("--json", action="store_true", help="print the coverage as JSON")
    _op_option(cov, "only this operator's coverage (default: every operator in the cases)")
    mapping = sub.add_parser("mapping", help="Markdown parameter-mapping table between two API surfaces")
    mapping.add_argument("op", help="operator: " + ", ".join(_operators()))
    mapping.add_argument("--from", dest="source", required=True, help="backend id, e.g. tf.nn")
    mapping.add_argument("--to", dest="target", required=True, help="backend id, e.g. mindspore.nn")
    mapping.add_argument("--report", type=Path, default=Path("reports/report.json"),
                         help="report.json for the measured column (default: reports/report.json)")
    fuzz = sub.add_parser("fuzz", help="print N random valid cases (a case file) for a seed")
    fuzz.add_argument("count", type=_bounded(int, 1, FUZZ_MAX_CASES, "a count of cases"))
    # The seed is part of every generated id, which has a length limit.
    fuzz.add_argument("--seed", type=_bounded(int, 0, 2**63 - 1, "a seed"), default=0)
    _op_option(fuzz, "the operator (default: the first registered, " + _operators()[0] + ")")
    bench = sub.add_parser("bench", help="time every backend on the benchmark shapes; writes bench.json")
    bench.add_argument("paths", nargs="*", default=["benchmarks"], help="benchmark case files (default: benchmarks/)")
    bench.add_argument("--backends", help="comma-separated backend ids or prefixes (default: all)")
    bench.add_argument("--out", type=Path, default=Path("reports"))
    bench.add_argument("--repeats", type=_bounded(int, 1, 10_000, "a count"), default=15)
    bench.add_argument("--warmup", type=_bounded(int, 0, 10_000, "a count"), default=3,
                       help="warm-up calls of a backend's first turn on a case, at least (default: 3)")
    bench.add_argument("--rounds", type=_bounded(int, 1, 100, "a count"), default=15,
                       help="rounds of turns on each case, sharing the timed calls (default: 15, one call a turn;"
                            " Note [Turns])")
    bench.add_argument("--warmup-time", type=_bounded(float, 0, 60, "seconds"), default=0.2, metavar="SECONDS",
                       help="warm-up time of a backend's first turn on a case, at least (default: 0.2; Note "
                            "[Steady state])")
    bench.add_argument("--rewarm-time", type=_bounded(float, 0, 60, "seconds"), default=0.05, metavar="SECONDS",
                       help="warm-up time of a backend's later turns on a case, at least, besides one call "
                            "(default: 0.05; Note [Steady state])")
    _op_option(bench, "only benchmark cases of this operator")
    bench.add_argument("--throughput", action="store_true",
                       help="also time whole runs: the default suite (every backend, forward and backward) and "
                            "500 and 5,000 fuzz cases (numpy, numba, torch.functional): results/s, the lower "
                            "bound, the parent's peak memory (make bench)")
    _translate_args(sub)
    _hunt_args(sub)
    return parser


def _hunt_args(sub) -> None:
    hunt = sub.add_parser("hunt", help="search an operator's parameter space for divergences no registry entry "
                                       "explains; shrink, group and explain each")
    hunt.add_argument("--op", required=True, choices=_operators(), help="the operator to hunt in")
    hunt.add_argument("--backends", help="comma-separated backend ids or framework prefixes (default: all available)")
    hunt.add_argument("--budget", type=_hunt_budget, default=("s", 600.0), metavar="10m|90s|500",
                      help="how long to hunt: a time (s, m, h) or a number of cases (default: 10m)")
    hunt.add_argument("--seed", type=_bounded(int, 0, 2**63 - 1, "a seed"), default=0)
    hunt.add_argument("--jobs", type=_bounded(int, 1, MAX_JOBS, "a count of calls"), default=min(2, os.cpu_count() or 1),
                      help="backend calls in flight at once (default: min(2, cores))")
    hunt.add_argument("--timeout", type=_bounded(float, 0.001, MAX_TIMEOUT_S, "seconds"), default=60.0,
                      help="seconds per backend call (default: 60)")
    hunt.add_argument("--resume", action="store_true", help="continue the hunt journalled in --out (same seed, "
                                                            "backends, versions and registry)")
    hunt.add_argument("--registry", type=Path, help="known-divergence registry whose failures are not hunted "
                                                    "(default: cases/known_divergences.yaml if it exists)")
    hunt.add_argument("--ignore-registry", action="store_true", help="hunt every divergence, known or not")
    hunt.add_argument("--out", type=Path, required=True, help="folder for the groups' files and hunt.json")


def _hunt_budget(text: str) -> tuple[str, float]:
    """'10m', '90s', '1.5h' (a time: ("s", seconds)) or '500' (a number of cases: ("cases", 500))."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text[:40])
    if not match:
        raise argparse.ArgumentTypeError(f"not a budget: {text[:40]!r} (a time such as 10m, 90s, 1h, or a "
                                         "number of cases such as 500)")
    value, unit = float(match.group(1)), match.group(2)
    if not unit:
        if value != int(value) or not 1 <= value <= 10**7:
            raise argparse.ArgumentTypeError(f"{text[:40]!r}: a number of cases is a whole number from 1 to 10^7")
        return "cases", int(value)
    seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
    if not 1 <= seconds <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is out of range (a time from 1s to 168h)")
    return "s", seconds


def _translate_args(sub) -> None:
    tr = sub.add_parser("translate", help="print the call in another API that computes the same function, "
                                          "verified by running both")
    tr.add_argument("call", nargs="?", help="the source call, e.g. 'Conv2DTranspose(filters=16, kernel_size=3, "
                                            "strides=2, padding=\"same\")' (literals only; tensors by their shape)")
    tr.add_argument("--from", dest="source", required=True, help="the source surface, e.g. tf.keras")
    tr.add_argument("--to", dest="target", required=True, help="the target surface, e.g. torch.nn")
    tr.add_argument("--params", help="instead of CALL: the native parameters as a YAML/JSON mapping, or a file "
                                     "holding one (needs --op)")
    _op_option(tr, "the operator (default: the one the callee names)")
    tr.add_argument("--input", metavar="SHAPE", help="the input shape in the source call's own layout, e.g. "
                                                     "1,16,16,3 (default: 16×16 with the channels the call takes)")
    tr.add_argument("--verify-shapes", type=_bounded(int, 1, 64, "a count of input sizes"), default=6,
                    help="input sizes to verify on, the given one first (default: 6)")
    tr.add_argument("--no-verify", action="store_true", help="print the translation without running it")
    tr.add_argument("--code", action="store_true", help="print the target program's code even when the call "
                                                        "alone is the translation")
    tr.add_argument("--timeout", type=_bounded(float, 0.001, MAX_TIMEOUT_S, "seconds"), default=120.0,
                    help="seconds per call (default: 120)")
    tr.add_argument("--max-memory", type=_size, default=None, metavar="SIZE",
                    help="each worker's resident-memory limit (default: none)")


def _operators() -> list[str]:
    from harness import ops
    return list(ops.OPS)


def _op_option(parser, help_text: str) -> None:
    parser.add_argument("--op", choices=_operators(), help=help_text)



_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40, "p": 1 << 50, "pib": 1 << 50}


MAX_TIMEOUT_S = 7 * 24 * 3600.0
MIN_MEMORY, MAX_MEMORY = 1 << 20, 1 << 50


def _bounded(convert, low, high, what: str):
    """An argparse type: ``convert(text)``, finite and within [low, high], or a one-line usage error."""
    def parse(text: str):
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"not {what}: {text[:40]!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is out of range ({what} from {low:g} to {high:g})")
        return value
    return parse


def _size(text: str) -> int:
    """'4GiB', '512MiB', '1.5g' or a byte count -> bytes (argparse type), between 1 MiB and 1 PiB."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text[:100])
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a memory size: {text[:40]!r} (e.g. 4GiB, 512MiB)")
    size = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is out of range (a memory size from 1MiB to 1PiB)")
    return int(size)



def _shard_spec(text: str) -> tuple[int, int]:
    """'K/N' with 1 ≤ K ≤ N (argparse type: checked before any case file is read)."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 ≤ K ≤ N, got {text[:40]!r}")
    return k, n


