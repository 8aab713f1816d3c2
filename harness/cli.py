"""The ``conform`` command line (DESIGN.md §6).

Exit codes: 0 the gate passes, 1 at least one failing verdict, 2 invalid case
files or usage (every problem printed as ``file:line: field: message``, nothing
run, no traceback).

Over 400 lines: one parser and one small function per command; the commands'
work lives in their own modules, what stays here is argument checking.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from harness import backends as backend_registry
from harness import interrupts
from harness.fuzz import MAX_CASES as FUZZ_MAX_CASES
from harness.globs import select_id
from harness.outdir import OutError, check_writable, claim
from harness.report.publish import Generation, PublishError
from harness.text import printable
from harness.yamlsrc import ProblemsError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
MAX_JOBS = 64   # each job may hold a framework worker's memory


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 too; keep its message, drop nothing
        self.print_usage(sys.stderr)
        print(f"conform: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="conform", description="Cross-framework conformance harness for DL operators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def paths(p):
        p.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases/)")
        p.add_argument("-k", dest="pattern", action="append", metavar="PATTERN",
                       help="only cases whose id contains PATTERN or matches it as a glob over the whole id "
                            "(only * and ? are special; brackets are literal); repeat to select more (OR). "
                            "A selection that matches no case is a usage error (exit 2)")
        p.add_argument("--registry", type=Path,
                       help="known-divergence registry (default: known_divergences.yaml in the first folder given)")
        p.add_argument("--max-memory", type=_size, default=None, metavar="SIZE",
                       help="refuse cases estimated to need more (e.g. 4GiB, 512MiB); also each worker's "
                            "resident-memory limit (default: half of the memory available now)")

    run = sub.add_parser("run", help="run cases against backends and write reports")
    paths(run)
    run.add_argument("--backends", help="comma-separated backend ids or framework prefixes (default: all)")
    run.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports/)")
    run.add_argument("--shard", type=_shard_spec, metavar="K/N",
                     help="run the K-th of N interleaved slices of the cases (1-based); "
                          "an empty slice (N larger than the number of cases) is a usage error")
    run.add_argument("--jobs", type=_bounded(int, 1, MAX_JOBS, "a count of calls"), default=min(2, os.cpu_count() or 1),
                     help="backend calls in flight at once (default: min(2, cores))")
    run.add_argument("--timeout", type=_bounded(float, 0.001, MAX_TIMEOUT_S, "seconds"), default=120.0, help="seconds per backend call (default: 120)")
    run.add_argument("--strict", action="store_true", help="xpass and stale registry entries fail the gate")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--resume", action="store_true",
                     help="keep the results in OUT/results.jsonl whose case content and framework version are "
                          "unchanged; run every other pair")

    report = sub.add_parser("report", help="re-render report.html, junit.xml and summary.md from a report.json")
    report.add_argument("report", type=Path, help="a report.json written by `conform run`")
    report.add_argument("--out", type=Path, help="folder for the files (default: the report's folder)")
    diff = sub.add_parser("diff", help="results that became worse, better, new or gone; exit 1 if any got worse")
    diff.add_argument("old", type=Path, help="the baseline report.json")
    diff.add_argument("new", type=Path, help="the report.json to compare with it")
    diff.add_argument("--json", action="store_true", help="print the changes as JSON")

    paths(sub.add_parser("validate", help="check case files only"))
    listing = sub.add_parser("list", help="print expanded case ids")
    paths(listing)
    _op_option(listing, "only cases of this operator")
    sub.add_parser("backends", help="list known backends and whether they are available")
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
    bench.add_argument("--warmup", type=_bounded(int, 0, 10_000, "a count"), default=3)
    _op_option(bench, "only benchmark cases of this operator")
    return parser


def _operators() -> list[str]:
    from harness import ops
    return list(ops.OPS)


def _op_option(parser, help_text: str) -> None:
    parser.add_argument("--op", choices=_operators(), help=help_text)


def _of_op(cases, op):
    """The cases of operator ``op`` (all without one); none is a usage error, never an empty green run."""
    if not op:
        return cases
    chosen = [c for c in cases if c.op == op]
    if not chosen:
        raise UsageError(f"--op {op}: none of the {len(cases)} cases is of this operator")
    return chosen


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
    import re
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text[:100])
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a memory size: {text[:40]!r} (e.g. 4GiB, 512MiB)")
    size = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is out of range (a memory size from 1MiB to 1PiB)")
    return int(size)


def _budget(args) -> int:
    from harness.memory import default_memory_budget
    return args.max_memory or default_memory_budget()


def _select(cases, patterns):
    """The cases ``-k`` selects; selecting nothing is a usage error, never an empty green run."""
    if not patterns:
        return cases
    chosen = [c for c in cases if select_id(c.id, patterns)]
    if not chosen:
        named = ", ".join(f"-k {p!r}" for p in patterns)
        verb = "matches" if len(patterns) == 1 else "match"
        raise UsageError(f"{named} {verb} none of the {len(cases)} cases (`conform list` prints the ids)")
    return chosen


def _shard_spec(text: str) -> tuple[int, int]:
    """'K/N' with 1 ≤ K ≤ N (argparse type: checked before any case file is read)."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 ≤ K ≤ N, got {text[:40]!r}")
    return k, n


def _shard(cases, spec):
    if not spec:
        return cases
    k, n = spec
    chosen = cases[k - 1::n]
    if not chosen:   # a slice that runs nothing would pass the gate without testing anything
        raise UsageError(f"--shard {k}/{n} selects no case: there are only {len(cases)} cases to split")
    return chosen


def _registry(args):
    """The known-divergence registry for these paths (empty if there is none)."""
    from harness import divergences
    path = args.registry
    if path is None:
        folders = [Path(p) for p in args.paths if Path(p).is_dir()]
        path = folders[0] / "known_divergences.yaml" if folders else None
    elif not path.is_file() and str(path) != os.devnull:
        raise UsageError(f"--registry {path}: no such file")
    return divergences.load(path) if path else divergences.Registry()


def _load(args, backends=None):
    """Cases and registry, every problem of both reported together (``backends``: the run's, for the memory guard)."""
    from harness.cases import load_suite
    from harness.memory import Budget
    budget = Budget.for_backends(_budget(args), backends)
    problems, cases, registry = [], [], None
    for loader in (lambda: load_suite(args.paths, memory_budget=budget), lambda: _registry(args)):
        try:
            value = loader()
        except ProblemsError as exc:
            problems += exc.problems
            continue
        if isinstance(value, list):
            cases = value
        else:
            registry = value
    if problems:
        raise ProblemsError(problems)
    return _select(cases, args.pattern), registry


def cmd_validate(args) -> int:
    cases, registry = _load(args)
    print(f"{len(cases)} cases OK; {len(registry.entries)} known divergences")
    return EXIT_OK


def cmd_list(args) -> int:
    cases, _ = _load(args)
    for case in _of_op(cases, args.op):
        print(case.id)
    return EXIT_OK


def cmd_backends(args) -> int:
    for bid, target in backend_registry.registry().items():
        cls = backend_registry.load_class(target)
        available, reason = cls.availability()
        print(f"{bid:20} {cls.framework:12} {cls.version() or '-':14} {'available' if available else reason}")
    return EXIT_OK


def cmd_run(args) -> int:
    from rich.console import Console

    from harness.report import json_report
    from harness.text import clean
    from harness.report.terminal import print_summary

    check_writable(args.out)
    try:
        chosen = backend_registry.select(args.backends, backend_registry.registry())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cases, registry = _load(args, chosen)
    cases = _shard(cases, args.shard)
    with claim(args.out, RUN_WRITES, args.paths), Generation(args.out) as gen:
        try:
            result = _run_into(args, cases, chosen, registry, gen)
        except OSError as exc:   # results.jsonl, logs/ or a reproducer: ENOSPC, EFBIG (ulimit -f), EIO
            raise UsageError(f"cannot write into {args.out} while running: {exc.strerror or exc}; the run "
                             "stopped and the previous reports there are unchanged") from None
        with interrupts.deferred():   # Note [Interrupts]: a signal now must not leave a torn or stale report set
            report = clean(json_report.build(result, strict=args.strict))
            if args.resume:
                gen.carry_reproducers(report["results"])
            _publish(gen, report, gen.path, gen.path)   # the generation is seen as --out: links stay relative
    print_summary(report, Console(quiet=args.quiet))
    if not args.quiet:
        print(f"report: {args.out / 'report.json'}")
    if result.incomplete:
        return EXIT_FAIL
    return EXIT_OK if report["gate"]["passed"] else EXIT_FAIL


def _run_into(args, cases, chosen, registry, gen):
    """The run itself, with progress; reproducers go into the new report generation ``gen``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.compare import GREEN
    from harness.report.repro import ReproWriter
    from harness.text import printable
    from harness.runner import RunOptions, run

    console = Console(stderr=True, quiet=args.quiet)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[last]}", markup=False),  # ids hold [...]
                        console=console, transient=True, disable=args.quiet or not console.is_terminal)
    failing = [0]

    def on_result(record):
        failing[0] += record["verdict"] not in GREEN
        progress.update(task, advance=1, description=f"conform ({failing[0]} failing)",
                        last=printable(f"{record['backend']} {record['case']}")[:60])

    def on_resume(plan):
        print(plan.summary(), file=sys.stderr)   # even with --quiet: it says what this run will judge
        progress.update(task, advance=len(plan.kept))

    with progress:
        task = progress.add_task("conform", total=len(cases) * len(chosen), last="")
        result = run(cases, RunOptions(backends=chosen, out=args.out, timeout_s=args.timeout, jobs=args.jobs,
                                       on_result=on_result, on_failure=ReproWriter(gen.path),
                                       registry=registry, resume=args.resume, on_resume=on_resume,
                                       memory_limit=_budget(args),
                                       check_stale=not (args.pattern or args.shard)))
    return result


# ---------------------------------------------------------------- --out: ownership, lock, one report set

#: Top-level names `conform run` writes in --out (harness.outdir owns the rules, harness.report.publish the set).
RUN_WRITES = ("report.json", "report.html", "junit.xml", "summary.md", "repro", "results.jsonl", "logs", ".conform")


def _publish(gen, report: dict, base: Path, html_out: Path) -> None:
    from harness.report.publish import publish_reports
    for warning in publish_reports(gen, report, base, html_out):
        print(f"conform: warning: {warning}", file=sys.stderr)


def cmd_report(args) -> int:
    from harness.report.check import normalize
    from harness.report.diff import ReportError, load
    try:
        report = normalize(load(args.report))
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    base = args.report.parent
    check_writable(args.out or base)
    out = args.out or base
    in_place = out.resolve() == base.resolve()
    writes = ("report.json", "report.html", "junit.xml", "summary.md", ".conform") + (("repro",) if in_place else ())
    with claim(out, writes), Generation(out) as gen:
        if in_place:
            gen.carry("repro")
        try:
            _publish(gen, report, base, out)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:   # odd values deep inside
            raise UsageError(f"{args.report}: cannot render this report: {type(exc).__name__}: {exc}") from None
    for name in ("report.json", "report.html", "junit.xml", "summary.md"):
        print(out / name)
    return EXIT_OK


def cmd_diff(args) -> int:
    import json

    from harness.report.diff import ReportError, diff, format_text, load
    try:
        old, new = load(args.old), load(args.new)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    changes = diff(old, new)
    if args.json:   # ASCII JSON: escapes every control character and lone surrogate
        print(json.dumps(changes, indent=1))
    else:           # ids, verdicts and backends come from the report files: user input
        print(printable(format_text(changes, args.old, args.new), keep="\n"), end="")
    return EXIT_FAIL if changes["worse"] else EXIT_OK


def cmd_bench(args) -> int:
    from rich.console import Console

    from harness.bench import print_table, run_bench
    from harness.cases import load_suite

    check_writable(args.out)
    try:
        chosen = backend_registry.select(args.backends, backend_registry.registry())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with claim(args.out, ("bench.json",), args.paths):
        result = run_bench(_of_op(load_suite(args.paths), args.op), chosen, args.out, args.warmup, args.repeats,
                           log=lambda line: print(line, file=sys.stderr))
    print_table(result, Console(width=160))
    print(f"bench: {args.out / 'bench.json'}")
    return EXIT_OK


def cmd_fuzz(args) -> int:
    from harness.fuzz import generate
    sys.stdout.write(generate(args.count, args.seed, op=args.op))
    return EXIT_OK


def cmd_coverage(args) -> int:
    import json as _json

    from harness import coverage
    from harness.cases import load_suite

    path = args.report or (Path("reports/report.json") if Path("reports/report.json").exists() else None)
    if path is not None and not path.exists():
        raise UsageError(f"--report {path}: no such file")
    report = coverage.load_report(path) if path else None
    measured = coverage.measure_all(_of_op(load_suite(args.paths), args.op), report)
    if args.json:
        print(_json.dumps({"operators": {cov.op: coverage.as_json(cov) for cov in measured}}, indent=1))
    else:
        print("\n\n".join(coverage.render(cov, summary=args.summary) for cov in measured))
    return EXIT_OK


def cmd_mapping(args) -> int:
    from harness import mapping, ops

    if args.op not in ops.OPS:
        raise UsageError(f"unknown operator {args.op!r}; known: {', '.join(ops.OPS)}")
    known = backend_registry.registry()
    for bid in (args.source, args.target):
        if bid not in known:
            raise UsageError(f"unknown backend {bid!r}; known: {', '.join(known)}")
    report = mapping.load_report(args.report)
    sys.stdout.write(mapping.render(args.op, args.source, args.target, report,
                                    str(args.report) if report else ""))
    return EXIT_OK


COMMANDS = {"coverage": cmd_coverage, "mapping": cmd_mapping, "run": cmd_run, "report": cmd_report, "diff": cmd_diff, "bench": cmd_bench, "fuzz": cmd_fuzz, "validate": cmd_validate, "list": cmd_list, "backends": cmd_backends}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM (CI cancelling a job) stops the run like Ctrl-C: workers stopped, partial report written.
    interrupts.install()
    try:
        return COMMANDS[args.command](args)
    except ProblemsError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"conform: {len(exc.problems)} problem(s) in case files; nothing was run", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, OutError, PublishError) as exc:   # --out refused, or the reports not written
        print(f"conform: error: {printable(exc)}", file=sys.stderr)   # paths and values are user input
        return EXIT_USAGE
    except KeyboardInterrupt:   # before or after the run itself (run() handles the run)
        print("conform: interrupted", file=sys.stderr)
        return EXIT_FAIL
    except BrokenPipeError:  # `conform list | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
