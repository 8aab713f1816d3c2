"""The ``conform`` command line (DESIGN.md §6).

Exit codes: 0 the gate passes, 1 at least one failing verdict, 2 invalid case
files or usage (every problem printed as ``file:line: field: message``, nothing
run, no traceback).

The parser and the option types live in ``harness.cliargs``; one small
function per command here, the commands' work in their own modules.
"""

from __future__ import annotations

import os
from typing import Optional
import sys
from pathlib import Path

from harness import backends as backend_registry
from harness import interrupts
from harness.cliargs import EXIT_USAGE, parser
from harness.globs import select_id
from harness.outdir import OutError, check_writable, claim
from harness.report.publish import Generation, PublishError, without_links
from harness.text import printable
from harness.yamlsrc import ProblemsError

EXIT_OK, EXIT_FAIL = 0, 1


class UsageError(Exception):
    pass


def _of_op(cases, op):
    """The cases of operator ``op`` (all without one); none is a usage error, never an empty green run."""
    if not op:
        return cases
    chosen = [c for c in cases if c.op == op]
    if not chosen:
        raise UsageError(f"--op {op}: none of the {len(cases)} cases is of this operator")
    return chosen


def _budget(args) -> int:
    from harness.memory import default_memory_budget
    return args.max_memory or default_memory_budget()


def _select(cases, patterns, claims_chosen: bool = False):
    """The cases ``-k`` selects; selecting nothing (no case, no claim) is a usage error, never an empty green run."""
    if not patterns:
        return cases
    chosen = [c for c in cases if select_id(c.id, patterns)]
    if not chosen and not claims_chosen:
        named = ", ".join(f"-k {p!r}" for p in patterns)
        verb = "matches" if len(patterns) == 1 else "match"
        raise UsageError(f"{named} {verb} none of the {len(cases)} cases (`conform list` prints the ids)")
    return chosen


def _shard(cases, args, backends):
    """Shard K of N of the selected cases and claims (``args.claims`` too), split by estimated cost (Note [Shard
    cost], ``harness/shards.py``); the sharding, for the report's suite record (None without ``--shard``)."""
    if not args.shard:
        return cases, None
    from harness.shards import Sharding
    k, n = args.shard
    sharding = Sharding(cases, args.claims, backends, args.mode, n)
    chosen, args.claims = sharding.take(k)
    if not chosen and not args.claims:   # a slice that runs nothing would pass the gate without testing anything
        raise UsageError(f"--shard {k}/{n} selects no case: there are only {len(cases)} cases to split")
    return chosen, sharding


def _registry(args):
    """The known-divergence registry for these paths (empty if there is none)."""
    from harness import divergences
    path = args.registry
    if path is None:
        path = _nearest_registry([Path(p) for p in args.paths])
    elif not path.is_file() and str(path) != os.devnull:
        raise UsageError(f"--registry {path}: no such file")
    return divergences.load(path) if path else divergences.Registry()


def _nearest_registry(paths: list[Path]) -> Optional[Path]:
    """``known_divergences.yaml`` in the first path's folder or the nearest folder above it (so a run of
    ``cases/conv2d_transpose`` uses the suite's registry in ``cases/``), as pytest finds its rootdir."""
    if not paths:
        return None
    start = paths[0].absolute()
    for folder in [start if start.is_dir() else start.parent, *(start if start.is_dir() else start.parent).parents]:
        candidate = folder / "known_divergences.yaml"
        if os.path.lexists(candidate):   # whatever it is: loading says why a FIFO or a device is refused
            return candidate
    return None


def _whole_suite(args, shards_too: bool = False) -> bool:
    """The run covers every case its registry was written for: only then is an entry matching nothing stale.
    ``shards_too``: the run's shards together do (``conform merge`` decides stale entries then)."""
    sharded = args.shard and not shards_too
    if args.pattern or sharded or args.registry is not None:
        return not (args.pattern or sharded)
    registry = _nearest_registry([Path(p) for p in args.paths])
    return registry is not None and any(Path(p).absolute() == registry.parent for p in args.paths)


def _load(args, backends=None):
    """The suite's index (``harness.suite``: a ``CaseRef`` per case, every file validated) and the registry, every
    problem of both reported together (``backends``: the run's, for the memory guard).
    The claims of the same paths are loaded alongside into ``args.claims`` (Note [Claims], ``harness/claims``)."""
    from harness.claims.load import load_claims
    from harness.memory import Budget
    from harness.suite import index_suite
    budget = Budget.for_backends(_budget(args), backends)
    problems, loaded = [], {}
    for name, loader in (("cases", lambda: index_suite(args.paths, memory_budget=budget)),
                         ("registry", lambda: _registry(args)),
                         ("claims", lambda: load_claims(args.paths, memory_budget=budget))):
        try:
            loaded[name] = loader()
        except ProblemsError as exc:
            problems += exc.problems
    if problems:
        raise ProblemsError(problems)
    claims = [c for c in loaded["claims"] if not args.pattern or select_id(c.id, args.pattern)
              or any(select_id(p.id, args.pattern) for p in c.points)]
    args.claims = claims
    return _select(loaded["cases"], args.pattern, bool(claims)), loaded["registry"]


def cmd_validate(args) -> int:
    cases, registry = _load(args)
    points = sum(len(c.points) for c in args.claims)
    print(f"{len(cases)} cases OK; {len(args.claims)} claims ({points} points) OK; "
          f"{len(registry.entries)} known divergences")
    return EXIT_OK


def cmd_list(args) -> int:
    cases, _ = _load(args)
    for case in _of_op(cases, args.op):
        print(case.id)
    for claims in args.claims:
        if not args.op or claims.claim.op == args.op:
            print("\n".join(f"claim {point.id}" for point in claims.points))
    return EXIT_OK


def cmd_backends(args) -> int:
    """Each surface, its environment and version; ``--prepare`` builds the environments first, ``--prune``
    removes the built environments none of the listed backends uses."""
    from harness import envs
    try:
        chosen = backend_registry.select(args.backends, backend_registry.registry()) if args.backends \
            else list(backend_registry.registry())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    failed = False
    print(f"{'backend':24} {'framework':12} {'version':14} {'environment':36} availability")
    for bid in chosen:
        target = envs.target_of(bid)
        if args.prepare and target is not None and not target.shared:
            try:
                envs.ensure(target, say=lambda text: print(text, file=sys.stderr))
            except envs.BuildError as exc:
                print(f"{bid}: {exc}", file=sys.stderr)
                failed = True
        where = envs.label_of(bid)
        available, reason = envs.availability(bid)
        cls = backend_registry.backend_class(bid)
        if args.prepare and available and (target is None or target.shared):
            try:
                cls.warm(say=lambda text: print(text, file=sys.stderr))
            except Exception as exc:   # a kernel that does not compile: say so, the other backends go on
                print(f"{bid}: warming failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                failed = True
        print(f"{bid:24} {cls.framework:12} {envs.version_of(bid) or '-':14} {where:36} "
              f"{'available' if available else reason}")
    if args.prune:
        for path in envs.prune(chosen):
            print(f"removed {path}", file=sys.stderr)
    return EXIT_FAIL if failed else EXIT_OK


def cmd_run(args) -> int:
    from rich.console import Console

    from harness.report import json_report
    from harness.shards import suite_record
    from harness.text import clean
    from harness.report.terminal import print_summary

    check_writable(args.out)
    try:
        chosen = backend_registry.select(args.backends, backend_registry.registry())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cases, registry = _load(args, chosen)
    whole_suite = (cases, args.claims)
    cases, sharding = _shard(cases, args, chosen)
    executor = _executor(args, chosen)
    with executor, claim(args.out, RUN_WRITES, args.paths), Generation(args.out) as gen:
        try:
            result = _run_into(args, cases, chosen, registry, gen, executor)
            claims = _run_claims(args, chosen, registry, gen, result, executor) if args.claims else []
        except OSError as exc:   # results.jsonl, logs/ or a reproducer: ENOSPC, EFBIG (ulimit -f), EIO
            raise UsageError(f"cannot write into {args.out} while running: {exc.strerror or exc}; the run "
                             "stopped and the previous reports there are unchanged") from None
        with interrupts.deferred():   # Note [Interrupts]: a signal now must not leave a torn or stale report set
            report = clean(json_report.build(result, strict=args.strict, claims=claims))
            report["suite"] = suite_record(*whole_suite, args.shard, args.mode, registry, chosen,
                                           _whole_suite(args, shards_too=True), sharding)
            if args.resume:
                report["results"] = without_links(report["results"], gen.carry_reproducers(report["results"]))
            _publish(gen, report, gen.path, gen.path)   # the generation is seen as --out: links stay relative
    print_summary(report, Console(quiet=args.quiet))
    if not args.quiet:
        print(f"report: {args.out / 'report.json'}")
    if result.incomplete:
        return EXIT_FAIL
    return EXIT_OK if report["gate"]["passed"] else EXIT_FAIL


def _executor(args, chosen):
    """The started executor of ``--executor``/``--address``; one that cannot be used is a usage error."""
    from harness.executors import ExecutorError, open_executor
    try:
        executor = open_executor(args.executor, args.address, jobs=args.jobs, backends=tuple(chosen))
        executor.start()
    except ExecutorError as exc:
        raise UsageError(str(exc)) from None
    return executor


def _run_into(args, cases, chosen, registry, gen, executor):
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

    def on_changed(text):   # even with --quiet: these cases were not judged (Note [Edited during a run])
        print(f"conform: {printable(text)}; the run is incomplete, and `conform run --resume` runs them",
              file=sys.stderr)

    with progress:
        task = progress.add_task("conform", total=len(cases) * len(chosen), last="")
        result = run(cases, RunOptions(backends=chosen, out=args.out, timeout_s=args.timeout, jobs=args.jobs,
                                       on_result=on_result, on_failure=ReproWriter(gen.path),
                                       registry=registry, resume=args.resume, on_resume=on_resume,
                                       memory_limit=_budget(args), mode=args.mode,
                                       check_stale=_whole_suite(args), executor=executor,
                                       on_changed=on_changed,
                                       on_note=lambda text: console.print(f"conform: {text}", markup=False)))
    return result


def _run_claims(args, chosen, registry, gen, result, executor) -> list[dict]:
    """The claims after the cases (their own workers); Ctrl-C marks the run incomplete like the cases' run."""
    from harness.claims.run import ClaimOptions, run_claims
    if result.incomplete:
        return []
    try:
        return run_claims(args.claims, ClaimOptions(backends=chosen, out=args.out, timeout_s=args.timeout,
                                                    jobs=args.jobs, registry=registry, memory_limit=_budget(args),
                                                    repro_dir=gen.path, executor=executor))
    except KeyboardInterrupt:
        result.incomplete = True
        return []


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


def cmd_merge(args) -> int:
    """The shards' report folders joined into one report set (``harness.report.merge``)."""
    from rich.console import Console

    from harness.report.merge import MergeError, write_merged
    from harness.report.terminal import print_summary
    try:
        report = write_merged(args.shards, args.out, args.allow_partial,
                              warn=lambda text: print(f"conform: warning: {text}", file=sys.stderr))
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    print_summary(report, Console(quiet=args.quiet))
    if not args.quiet:
        print(f"report: {args.out / 'report.json'}")
    return EXIT_OK if report["gate"]["passed"] else EXIT_FAIL


def cmd_diff(args) -> int:
    import json

    from harness.report.diff import ReportError, between, diff, format_text, load
    if (args.new is None) == (args.between is None):
        raise UsageError("diff takes two reports (OLD NEW), or one report and --between A B")
    try:
        if args.between:
            changes = between(load(args.old), *args.between)
            titles = [f"{args.between[0]} in {args.old}", args.between[1]]
        else:
            changes, titles = diff(load(args.old), load(args.new)), [args.old, args.new]
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    if args.json:   # ASCII JSON: escapes every control character and lone surrogate
        print(json.dumps(changes, indent=1))
    else:           # ids, verdicts and backends come from the report files: user input
        print(printable(format_text(changes, *titles), keep="\n"), end="")
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
    say = lambda line: print(line, file=sys.stderr)   # noqa: E731
    with claim(args.out, ("bench.json", "throughput") if args.throughput else ("bench.json",), args.paths):
        result = run_bench(_of_op(load_suite(args.paths), args.op), chosen, args.out, args.warmup, args.repeats,
                           log=say, warmup_s=args.warmup_time, rounds=args.rounds,
                           rewarm_s=args.rewarm_time)
        if args.throughput:
            from harness.throughput import default_runs, lines, record
            result = record(args.out, result, default_runs(), say)
    print_table(result, Console(width=160))
    if args.throughput:
        print("\n".join(lines(result["throughput"])))
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
        if backend_registry.split_version(bid)[0] not in known:
            raise UsageError(f"unknown backend {bid!r}; known: {', '.join(known)}")
    report = mapping.load_report(args.report)
    sys.stdout.write(mapping.render(args.op, args.source, args.target, report,
                                    str(args.report) if report else ""))
    return EXIT_OK


def cmd_translate(args) -> int:
    from harness.translate.command import run as translate
    from harness.translate.parse import TranslateInputError
    try:
        return translate(args)
    except TranslateInputError as exc:
        raise UsageError(str(exc)) from None


def cmd_hunt(args) -> int:
    from harness.hunt.command import HuntUsageError, run as hunt
    try:
        return hunt(args)
    except HuntUsageError as exc:
        raise UsageError(str(exc)) from None


COMMANDS = {"hunt": cmd_hunt, "translate": cmd_translate, "coverage": cmd_coverage, "mapping": cmd_mapping, "run": cmd_run, "report": cmd_report, "diff": cmd_diff, "merge": cmd_merge, "bench": cmd_bench, "fuzz": cmd_fuzz, "validate": cmd_validate, "list": cmd_list, "backends": cmd_backends}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
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
