"""The pytest plugin (entry point ``pytest11: harness.pytest_plugin``): ``pytest cases/`` runs case files as test items.

Collection: a YAML file under a path given on the command line whose top level is a mapping with ``op``
or ``cases`` is a case file (claim files, the registry ``known_divergences.yaml``, CI workflows and other
YAML are not); it is loaded by conform's loader (``harness.cases.load_file``), so a problem is a collection
error worded ``file:line: field: message``, and a case id seen in an earlier file is one too. Paths that
come from ``testpaths`` or the current folder are never walked for case files: ``pytest`` in this
repository runs its own tests only (``tests/conftest.py`` also keeps ``pytest tests/`` off its YAML data).

Items: one per result of report.json, (case × backend × gradient), named by conform's junit name plus the
backend: ``<case id>[numpy]`` for a forward result, ``<case id>.grad_x[torch.functional]`` for ∂x.
Verdicts become outcomes: ``pass`` passed; ``xfail`` xfailed with the registry entry's id and reason;
``unsupported``/``skipped`` skipped with the reason; every other verdict (``xpass`` included) failed with
conform's reason and the reproducer's path. ``harness.pytest_run`` judges, as ``conform run`` does.

pytest-xdist: each process judges the items it is given with its own framework workers; records travel
to the controller on the reports (``conform_record``), where ``--conform-out`` writes one report set.
``--dist loadfile`` keeps a file's items in one process, so their case preparation is shared.

Items hold the suite's index (``harness.suite.CaseRef``), not cases: a file's cases are rebuilt when its
first item runs and held until another file's item runs; a case edited since collection fails its items.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest

from harness.compare import GREEN

_RUNNER = pytest.StashKey()       # this process's ProcessRunner, made when the first item runs
_SETTINGS = pytest.StashKey()     # backends, mode and registry of this process (_settings)
_SEEN = pytest.StashKey()         # case id -> "file:line" of its first definition in this collection
_HELD = pytest.StashKey()         # (CaseFile, its rebuilt cases by id, what changed): one file's cases at a time


def pytest_addoption(parser) -> None:
    group = parser.getgroup("conform", "conform case files (harness.pytest_plugin)")
    group.addoption("--conform-backends", default=None,
                    help="comma-separated backend ids or framework prefixes (default: every available one)")
    group.addoption("--conform-mode", choices=("forward", "backward", "both"), default=None,
                    help="forward | backward | both for every case (default: each case's own mode)")
    group.addoption("--conform-registry", default=None, type=Path,
                    help="known-divergence registry (default: the nearest known_divergences.yaml, "
                         "as conform run finds it)")
    group.addoption("--conform-out", default=None, type=Path,
                    help="also write conform's report set (report.json, html, junit, summary, repro/) here")
    group.addoption("--conform-timeout", default=None, type=float, help="seconds per backend call (default: 120)")


class ConformFailure(Exception):
    """A result that fails conform's gate; its text is conform's verdict, reason and reproducer."""


def _settings(config) -> dict:
    """Backends, mode and the loaded registry, worked out once per process from the options."""
    from harness import backends as backend_registry
    from harness import divergences
    from harness.cli import _nearest_registry
    from harness.yamlsrc import ProblemsError
    if _SETTINGS not in config.stash:
        try:
            backends = backend_registry.select(config.getoption("conform_backends"), backend_registry.registry())
        except ValueError as exc:
            raise pytest.UsageError(f"--conform-backends: {exc}") from None
        path = config.getoption("conform_registry")
        if path is None:
            path = _nearest_registry([Path(a) for a in _case_args(config)])
        elif not path.is_file() and str(path) != os.devnull:
            raise pytest.UsageError(f"--conform-registry {path}: no such file")
        try:
            registry = divergences.load(path) if path else divergences.Registry()
        except ProblemsError as exc:
            raise pytest.UsageError("\n".join(map(str, exc.problems))) from None
        config.stash[_SETTINGS] = {"backends": backends, "mode": config.getoption("conform_mode"),
                                   "registry": registry}
    return config.stash[_SETTINGS]


def _case_args(config) -> list[str]:
    """The command-line paths (without ``::`` selectors); none when pytest took them from testpaths."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    return [arg.split("::")[0] for arg in config.args]


def _under_args(config, path: Path) -> bool:
    roots = [Path(a).absolute() for a in _case_args(config)]
    return any(path == root or root in path.parents for root in roots)


def pytest_configure(config) -> None:
    config.stash[_SEEN] = {}
    config.addinivalue_line("markers", "conform: a result of a conform case file (harness.pytest_plugin)")
    if _case_args(config):   # options checked before collection: a usage error, not a collection error
        _settings(config)
    if config.getoption("conform_out") is not None and not hasattr(config, "workerinput"):
        from harness.pytest_publish import Publisher
        config.pluginmanager.register(Publisher(config, _case_args(config)), Publisher.NAME)


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix not in (".yaml", ".yml") or file_path.name == "known_divergences.yaml":
        return None
    if not _under_args(parent.config, file_path.absolute()) or not _looks_like_cases(file_path):
        return None
    return CaseFile.from_parent(parent, path=file_path)


def _looks_like_cases(path: Path) -> bool:
    """A mapping with ``op`` or ``cases`` at the top (what the loader then checks in full)."""
    import yaml
    try:
        with open(path, "rb") as handle:
            doc = yaml.safe_load(handle.read(1 << 20))
    except (OSError, yaml.YAMLError):
        return True   # unreadable or malformed: the loader says where
    return isinstance(doc, dict) and ("op" in doc or "cases" in doc) and ("claims" not in doc or "cases" in doc)


class CaseFile(pytest.File):
    """A case file: one item per case, backend and result."""

    def collect(self):
        from harness.backward import planned
        from harness.cases import load_file
        from harness.memory import Budget, default_memory_budget
        from harness.report.gradients import junit_name
        from harness.suite import index_file
        from harness.userfile import read_text
        from harness.yamlsrc import ProblemsError
        settings = _settings(self.config)
        display = os.path.relpath(self.path, self.config.invocation_params.dir)
        budget = Budget.for_backends(default_memory_budget(), settings["backends"])
        try:
            text = read_text(self.path, display)
            cases = load_file(self.path, display, memory_budget=budget, text=text)
        except ProblemsError as exc:
            raise self.CollectError("\n".join(map(str, exc.problems))) from None
        # The items hold the index; the cases are rebuilt when the file's first item runs (``rebuilt``).
        cases = self.refs = index_file(self.path, text, cases, display=display)
        seen = self.config.stash[_SEEN]
        for case in cases:
            first = seen.setdefault(case.id, f"{case.file}:{case.line}")
            if first != f"{case.file}:{case.line}":
                raise self.CollectError(f"{case.file}:{case.line}: id: duplicate case id {case.id!r} "
                                        f"(first at {first})")
        for case in cases:
            for gradient in planned(case, settings["mode"] or case.mode):
                name = junit_name({"case": case.id, "gradient": gradient})
                for backend in settings["backends"]:
                    yield CaseItem.from_parent(self, name=f"{name}[{backend}]", case=case, backend=backend,
                                               gradient=gradient)

    def rebuilt(self, ref):
        """The ``Case`` of ``ref`` (one of this file's), the file's cases rebuilt when the first of its items
        runs and held until another file's item runs (Note [Case index], ``harness/suite.py``); a case edited
        since collection fails its items with what changed (Note [Edited during a run])."""
        from harness.suite import materialise
        held = self.config.stash.get(_HELD, None)
        if held is None or held[0] is not self:
            said: list[str] = []
            held = (self, {case.id: case for case in materialise(self.refs, said.append)}, said)
            self.config.stash[_HELD] = held
        if ref.id not in held[1]:
            pytest.fail(held[2][0] if held[2] else f"{ref.file}:{ref.line}: {ref.id} was not rebuilt", pytrace=False)
        return held[1][ref.id]


class CaseItem(pytest.Item):
    """One result: ``case`` (a ``harness.suite.CaseRef``) on ``backend`` (``gradient``: None for the output, else
    x/w/b)."""

    def __init__(self, *, case, backend: str, gradient: Optional[str], **kwargs):
        super().__init__(**kwargs)
        self.case, self.backend, self.gradient = case, backend, gradient
        self.conform_record: Optional[dict] = None
        self.conform_index = 0
        self.add_marker(pytest.mark.conform)

    def runtest(self) -> None:
        record = _runner(self.config).result(self.parent.rebuilt(self.case), self.backend, self.gradient)
        self.conform_record = record
        verdict = record["verdict"]
        if verdict == "pass":
            return
        if verdict == "xfail":
            entry = record.get("divergence") or {}
            pytest.xfail(f"{entry.get('id')}: {entry.get('reason')}")
        if verdict in GREEN:   # unsupported, skipped; reported at the case file, not at this line (pytest's own
            # skip markers do the same with this flag)
            raise pytest.skip.Exception(f"{verdict}: {record.get('reason')}", _use_item_location=True)
        raise ConformFailure(record)

    def repr_failure(self, excinfo, style=None):
        if not isinstance(excinfo.value, ConformFailure):
            return super().repr_failure(excinfo, style)
        record = excinfo.value.args[0]
        lines = [f"{record['verdict']}: {record.get('reason')}", f"case: {record['file']}:{record['line']}"]
        if record.get("error"):
            lines.append(f"error: {record['error'].get('type')}: {record['error'].get('message')}")
        if record.get("repro"):
            base = self.config.getoption("conform_out") or _runner(self.config).repro.out   # the published path
            lines.append(f"reproducer: {base / record['repro']}")
        elif record.get("repro_error"):
            lines.append(f"reproducer not written: {record['repro_error']}")
        return "\n".join(lines)

    def reportinfo(self):
        return self.path, self.case.line - 1, f"{self.case.op} {self.name}"


def _runner(config):
    """This process's runner, made on first use (so a run that selects nothing starts no framework)."""
    if _RUNNER not in config.stash:
        from harness.memory import default_memory_budget
        from harness.pytest_run import ProcessRunner
        from harness.runner import DEFAULT_TIMEOUT_S
        settings = _settings(config)
        factory = config._tmp_path_factory   # pytest's per-process temporary folder (kept for the last runs)
        publisher = config.pluginmanager.get_plugin("conform-publisher")
        repro_out = (Path(config.workerinput["conform_repro"]) if "conform_repro" in getattr(config, "workerinput", {})
                     else publisher.generation.path if publisher is not None else factory.mktemp("conform"))
        config.stash[_RUNNER] = ProcessRunner(
            settings["backends"], settings["registry"], repro_out, factory.mktemp("conform-logs"),
            mode=settings["mode"], timeout_s=config.getoption("conform_timeout") or DEFAULT_TIMEOUT_S,
            memory_limit=default_memory_budget())
    return config.stash[_RUNNER]


def pytest_collection_finish(session) -> None:
    for index, item in enumerate(session.items):   # the same in every xdist worker: each collects everything
        item.conform_index = index


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call" and isinstance(item, CaseItem) and item.conform_record is not None:
        report.conform_record = item.conform_record   # serialised with the report to the xdist controller
        report.conform_index = item.conform_index     # the report's order: the suite's, whatever the schedule
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: each worker writes its reproducers into the controller's report generation."""
    publisher = node.config.pluginmanager.get_plugin("conform-publisher")
    if publisher is not None:
        node.workerinput["conform_repro"] = str(publisher.generation.path)


def pytest_sessionfinish(session, exitstatus) -> None:
    runner = session.config.stash.get(_RUNNER, None)
    if runner is not None:
        runner.close(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
