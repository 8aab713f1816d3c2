"""``pytest --conform-out DIR``: conform's report set of a pytest run, written by one process.

Registered by ``harness.pytest_plugin`` in the process that sees every report (the only one, or the
pytest-xdist controller): it claims ``DIR`` and opens a report generation when pytest starts (so a
folder conform may not write is refused before anything runs), the processes write reproducers into that
generation, each result's record arrives on its test report, and at the end the set (report.json,
report.html, junit.xml, summary.md) is published exactly as ``conform run`` publishes it.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest


class Publisher:
    NAME = "conform-publisher"

    def __init__(self, config, case_paths: list[str]):
        from harness.cli import RUN_WRITES
        from harness.outdir import OutError, check_writable, claim
        from harness.report.publish import Generation
        self.config, self.records, self.started = config, [], time.monotonic()
        self.out: Path = config.getoption("conform_out")
        self._stack = ExitStack()
        try:
            check_writable(self.out)
            self._stack.enter_context(claim(self.out, RUN_WRITES, case_paths))
            self.generation = self._stack.enter_context(Generation(self.out))
        except OutError as exc:
            self._stack.close()
            raise pytest.UsageError(f"--conform-out: {exc}") from None

    def pytest_runtest_logreport(self, report) -> None:
        record = getattr(report, "conform_record", None)
        if record is not None and report.when == "call":
            self.records.append((getattr(report, "conform_index", 0), record))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus) -> None:
        from harness.cli import _publish
        from harness.interrupts import deferred
        from harness.pytest_plugin import _settings
        from harness.report import json_report
        from harness.runner import RunResult, environment
        from harness.text import clean
        backends = _settings(self.config)["backends"]
        results = [record for _, record in sorted(self.records, key=lambda pair: pair[0])]   # the items' order
        result = RunResult(results=results, environment=environment(backends, {}, {}),
                           duration_s=round(time.monotonic() - self.started, 3),
                           incomplete=exitstatus == pytest.ExitCode.INTERRUPTED)
        with self._stack, deferred():
            _publish(self.generation, clean(json_report.build(result)), self.generation.path, self.generation.path)
