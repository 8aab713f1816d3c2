"""``conform hunt``: the command around the engine (settings, the output folder, the progress display).

Exit codes: 0 the hunt found no group (nothing new), 1 it found at least one (or was interrupted:
``--resume`` continues it), 2 usage (a bad budget, an unknown backend, ``--resume`` into another
hunt's folder, an output folder that is not conform's).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from rich.console import Console, Group as RichGroup
from rich.live import Live
from rich.text import Text

from harness import backends as backend_registry
from harness import divergences
from harness.hunt import output, space
from harness.hunt.engine import Hunt, HuntOptions
from harness.hunt.journal import JournalMismatch
from harness.outdir import check_writable, claim

#: Top-level names every hunt writes (group files are added as groups are found: ``OutDir.own``).
WRITES = ("hunt.json", "hunt-journal.jsonl", "hunt-work")


class HuntUsageError(Exception):
    """Bad settings (exit 2)."""


def _registry(args) -> tuple[divergences.Registry, dict]:
    if args.ignore_registry and args.registry is not None:
        raise HuntUsageError("--registry and --ignore-registry exclude each other")
    if args.ignore_registry:
        return divergences.Registry(), {"registry": None, "ignore_registry": True}
    path = args.registry or Path("cases/known_divergences.yaml")
    if args.registry is not None and not path.is_file():
        raise HuntUsageError(f"--registry {path}: no such file")
    if not path.is_file():
        return divergences.Registry(), {"registry": None, "ignore_registry": False}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return divergences.load(path), {"registry": f"{path} sha256:{digest}", "ignore_registry": False}


def _forget_previous(outdir) -> None:
    """A new hunt (not ``--resume``) removes the group files of the previous hunt in the folder."""
    try:
        previous = json.loads((outdir.path / "hunt.json").read_text(encoding="utf-8"))
        names = [n for g in previous.get("groups", []) for n in g.get("files", [])]
    except (OSError, ValueError, AttributeError):
        return
    owned = set(outdir.manifest["owned"])
    gone = [n for n in names if n in owned and "/" not in n]
    for name in gone:
        (outdir.path / name).unlink(missing_ok=True)
    outdir.disown(gone)


class Display:
    """The live progress: budget, cases, results, groups (time to each), what is being shrunk."""

    def __init__(self, console: Console, options: HuntOptions, budget_text: str):
        self.console, self.options, self.budget_text = console, options, budget_text
        self.hunt = None
        self.round_started = time.monotonic()
        self.round_results = 0
        self.live = Live(console=console, refresh_per_second=4, transient=False, get_renderable=self.render) \
            if console.is_terminal else None

    def event(self, kind: str, info: dict) -> None:
        self.hunt = info["hunt"]
        if kind == "round":
            self.round_started, self.round_results = time.monotonic(), 0
            self.on_round()
        elif kind == "result":
            self.round_results += 1
        elif kind == "group":
            group = info["group"]
            self.on_group(group)
            if self.live is None:
                self.console.print(f"conform hunt: group {group.signature} after {group.found_s:.0f} s", markup=False)

    on_round = on_group = staticmethod(lambda *a: None)

    def render(self):
        h = self.hunt
        if h is None:
            return Text("conform hunt: starting")
        spent = h.elapsed_s + (time.monotonic() - self.round_started)
        of_cases = self.options.budget_cases is not None
        head = Text.assemble(("conform hunt ", "bold"), f"{self.options.op} · seed {self.options.seed} · ",
                             f"{spent:.0f} s" + ("" if of_cases else f" of {self.budget_text}"),
                             f" · round {h.rounds} · cases {h.cases_run}" + (f" of {self.budget_text}" if of_cases
                                                                            else ""),
                             f" · results {h.results + self.round_results} · groups ", (str(len(h.groups)), "bold"),
                             f" · failures explained by the registry or a group {sum(h.explained.values())}")
        lines = [head]
        for c in h.active:
            lines.append(Text(f"  shrinking {c.label}: {c.phase}, step {c.steps}, size "
                              f"{space.cost(self.options.op, c.current):.0f}", style="yellow"))
        for g in h.groups:
            lines.append(Text(f"  {g.found_s:>5.0f} s  {g.signature}", style="green"))
        return RichGroup(*lines)


def run(args) -> int:
    check_writable(args.out)
    try:
        chosen = backend_registry.select(args.backends, backend_registry.registry())
    except ValueError as exc:
        raise HuntUsageError(str(exc)) from None
    if not chosen:
        raise HuntUsageError("no backend is available to hunt with")
    registry, settings = _registry(args)
    kind, amount = args.budget
    budget_text = f"{amount:g} s" if kind == "s" else f"{amount}"
    console = Console(stderr=True)
    options = HuntOptions(op=args.op, backends=chosen, out=args.out, seed=args.seed,
                          budget_s=amount if kind == "s" else None, budget_cases=amount if kind == "cases" else None,
                          jobs=args.jobs, timeout_s=args.timeout, registry=registry, resume=args.resume,
                          settings=settings)
    display = Display(console, options, budget_text)
    options.on_event = display.event
    with claim(args.out, WRITES) as outdir:
        if not args.resume:
            _forget_previous(outdir)
        display.on_group = lambda group: output.write_group(outdir, display.hunt, group)
        display.on_round = lambda *a: display.hunt and output.write_summary(outdir, display.hunt)
        hunt = Hunt(options)
        try:
            if display.live:
                with display.live:
                    hunt.run()
            else:
                hunt.run()
        except JournalMismatch as exc:
            raise HuntUsageError(str(exc)) from None
        except KeyboardInterrupt:   # between rounds (a round in flight is cancelled by run() itself)
            hunt.interrupted = True
        path = output.write_summary(outdir, hunt)
    print(f"{len(hunt.groups)} group(s) in {hunt.rounds} rounds, {hunt.cases_run} cases, {hunt.elapsed_s:.0f} s"
          + ("; interrupted: --resume continues" if hunt.interrupted else ""), file=sys.stderr)
    for g in hunt.groups:
        print(f"{g.found_s:>6.0f} s  {args.out / (g.signature + '.md')}")
    print(f"hunt: {path}")
    return 1 if hunt.groups or hunt.interrupted else 0
