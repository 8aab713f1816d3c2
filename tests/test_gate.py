"""The gate cannot go green by accident, and ``--resume`` never keeps an outdated result.

Everything here drives the real ``conform`` command line on small case files:
edited cases and a changed framework version make ``--resume`` run exactly
those pairs again; ``-k`` is a literal-bracket glob, repeatable, and a
selection of nothing is a usage error; a real run interrupted with SIGINT
reads ``passed: false`` in the terminal and in every report file.
"""

from __future__ import annotations

import json
import re
import signal
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from helpers import conform, start_conform, wait_for_results, write

from harness.report import junit

CASES = """\
    op: conv2d_transpose
    defaults: {input: [1, 2, 5, 5], out_channels: 2, kernel_size: 3, stride: 2, padding: 1}
    cases:
      - id: steady
      - id: reseeded
        data: {seed: 1}
      - id: restrided
      - id: restricted
      - id: redocumented
        description: first words
      - id: sweep
        matrix: {dtype: [float32, float16]}
    """
# The same suite after editing: a data seed, a parameter and the backends list change (the runs must
# change); a description changes and every case moves down two lines (the results must not); one case is new.
EDITED = """\
    op: conv2d_transpose
    defaults: {input: [1, 2, 5, 5], out_channels: 2, kernel_size: 3, stride: 2, padding: 1}
    # two new lines above the cases
    # move every case down
    cases:
      - id: steady
      - id: reseeded
        data: {seed: 2}
      - id: restrided
        stride: 3
      - id: restricted
        backends: [numpy]
      - id: redocumented
        description: other words, same call
      - id: sweep
        matrix: {dtype: [float32, float16]}
      - id: added
    """
BACKENDS = "numpy,torch.functional"    # the oracle and one real framework (a torch worker starts in seconds)


def line_of(text: str, case_id: str) -> int:
    """The line of a case in one of the case-file texts above."""
    lines = textwrap.dedent(text).splitlines()
    return 1 + lines.index(f"  - id: {case_id.split('[')[0]}")


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def results(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["case"], r["backend"]): r for r in json.loads((out / "report.json").read_text())["results"]}


# ---------------------------------------------------------------- --resume keyed by content

def test_editing_cases_then_resume_reruns_exactly_the_changed_pairs(tmp_path):
    cases, out = write(tmp_path / "suite.yaml", CASES), tmp_path / "out"
    first = conform("run", cases, "--backends", BACKENDS, "--out", out, "--quiet")
    assert first.returncode == 0, first.stderr
    before = results(out)
    assert all(r["case_hash"] and "backend_version" in r for r in before.values())

    write(cases, EDITED)
    resumed = conform("run", cases, "--backends", BACKENDS, "--out", out, "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # 7 cases × 2 backends before; 3 cases edited (6 pairs), 1 new (2 pairs), 4 unchanged (8 pairs kept).
    assert "resume: kept 8 results, rerunning 8 (6 case changed, 0 framework version changed, 2 new)" \
        in resumed.stderr
    after = results(out)
    changed = {(c, b) for c in ("reseeded", "restrided", "restricted", "added") for b in BACKENDS.split(",")}
    # The journal is rewritten with the kept records first; what ran again is appended after them, in order.
    lines = journal(out)
    assert len(lines) == len({(r["case"], r["backend"]) for r in lines}) == 16    # each pair once
    assert {(r["case"], r["backend"]) for r in lines[8:]} == changed
    for key in set(after) - changed:      # kept as they were, but for where the case now is and what it says
        kept, old = dict(after[key]), dict(before[key])
        assert (old.pop("line"), kept.pop("line")) == (line_of(CASES, key[0]), line_of(EDITED, key[0]))
        assert kept.pop("description") == ("other words, same call" if key[0] == "redocumented" else None)
        old.pop("description")
        assert kept == old
    # What ran again is the edited call, judged afresh.
    assert after[("restrided", "numpy")]["params"]["stride"] == [3, 3]
    assert after[("restrided", "numpy")]["case_hash"] != before[("restrided", "numpy")]["case_hash"]
    assert after[("reseeded", "numpy")]["metrics"] != before[("reseeded", "numpy")]["metrics"]
    assert after[("restricted", "torch.functional")]["verdict"] == "skipped"
    assert before[("restricted", "torch.functional")]["verdict"] == "pass"

    # A later resume finds nothing outdated in the journal: everything is kept.
    again = conform("run", cases, "--backends", BACKENDS, "--out", out, "--quiet", "--resume")
    assert "resume: kept 16 results, rerunning 0 (0 case changed" in again.stderr, again.stderr
    assert results(out) == after


def test_a_framework_version_change_reruns_that_backends_pairs(tmp_path):
    cases, out = write(tmp_path / "suite.yaml", CASES), tmp_path / "out"
    assert conform("run", cases, "--backends", "numpy,numba", "--out", out, "--quiet").returncode == 0
    records = journal(out)
    installed = {r["backend"]: r["backend_version"] for r in records}
    assert installed["numba"]               # the version numba reports, recorded with every result
    # As if the results had been produced by another numba: edit the journal, not the framework.
    for r in records:
        if r["backend"] == "numba":
            r["backend_version"] = "0.0.1"
    records[0].pop("case_hash")             # a record from before case hashes: it cannot be trusted
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    resumed = conform("run", cases, "--backends", "numpy,numba", "--out", out, "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert records[0]["backend"] == "numpy"
    assert "resume: kept 6 results, rerunning 8 (1 case changed, 7 framework version changed, 0 new)" \
        in resumed.stderr
    after = journal(out)
    assert len(after) == 14
    assert {r["backend_version"] for r in after if r["backend"] == "numba"} == {installed["numba"]}
    assert all(r["case_hash"] for r in after)


# ---------------------------------------------------------------- selections

def test_a_selection_that_matches_nothing_is_a_usage_error_everywhere(tmp_path):
    cases, out = write(tmp_path / "suite.yaml", CASES), tmp_path / "out"
    for command in (["run", "--backends", "numpy", "--out", out], ["list"], ["validate"]):
        proc = conform(command[0], cases, "-k", "nomatch", *command[1:])
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert "-k 'nomatch' matches none of the 7 cases" in proc.stderr
        assert "Traceback" not in proc.stderr and "gate" not in proc.stdout
    assert not out.exists()                 # nothing ran, nothing was written
    two = conform("list", cases, "-k", "nomatch", "-k", "nothing*")
    assert two.returncode == 2 and "-k 'nomatch', -k 'nothing*' match none of the 7 cases" in two.stderr
    # An empty shard selects nothing too: it would pass without testing anything.
    shard = conform("run", cases, "--shard", "9/9", "--backends", "numpy", "--out", out)
    assert shard.returncode == 2 and "--shard 9/9 selects no case: there are only 7 cases" in shard.stderr


def test_k_brackets_are_literal_and_repeated_k_selects_the_union(tmp_path):
    cases = write(tmp_path / "suite.yaml", CASES)

    def listed(*patterns):
        proc = conform("list", cases, *[arg for p in patterns for arg in ("-k", p)])
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    # As a character class, `[dtype=float16]` would match ids ending in d, t, y, p, e, ... ('steady').
    assert listed("*[dtype=float16]") == ["sweep[dtype=float16]"]
    assert listed("sweep[dtype=float32]") == ["sweep[dtype=float32]"]            # a substring, brackets and all
    assert listed("res*ded") == ["reseeded", "restrided"]                           # a glob over the whole id
    assert listed("steady", "*[dtype=float16]", "rest?ided") == ["steady", "restrided", "sweep[dtype=float16]"]
    assert listed("steady", "steady") == ["steady"]                               # OR, not a repeat


# ---------------------------------------------------------------- an interrupted run never passes

def test_an_interrupted_run_fails_the_gate_in_the_terminal_and_every_report(tmp_path):
    ids = [f"case-{i}" for i in range(80)]
    cases = write(tmp_path / "many.yaml", "op: conv2d_transpose\ndefaults: {input: [8, 32, 24, 24], "
                  "out_channels: 2, kernel_size: 3, stride: 2, padding: 1}\ncases:\n"
                  + "".join(f"  - id: {i}\n" for i in ids))
    out = tmp_path / "out"
    proc = start_conform("run", cases, "--backends", "numpy", "--out", out)   # not --quiet: the terminal too
    wait_for_results(out / "results.jsonl", 5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr

    report = json.loads((out / "report.json").read_text())
    assert report["incomplete"] is True and 5 <= len(report["results"]) < 80
    # Every finished result passed: only the interruption can fail this gate.
    assert {r["verdict"] for r in report["results"]} == {"pass"}
    assert report["gate"]["passed"] is False

    assert "gate: FAIL (incomplete run)" in stdout
    page = (out / "report.html").read_text()
    gate = re.search(r'<div class="gate ([^"]+)" id="gate">\s*(.*?)\s*</div>', page, re.S)
    assert gate.group(1) == "gate-fail" and "FAIL" in gate.group(2) and "incomplete run" in gate.group(2)
    assert "<title>conform report: FAIL" in page
    summary = (out / "summary.md").read_text()
    assert summary.startswith("## conform: ❌ gate FAILED") and "incomplete run" in summary.splitlines()[0]
    root = ET.parse(out / "junit.xml").getroot()
    assert root.get("errors") == "1" and root.get("failures") == "0"
    (error,) = root.iter("error")
    assert error.get("type") == "incomplete" and "interrupted" in error.get("message")

    # `conform report` re-renders from the saved report: the same gate, even from a report written
    # before an incomplete run failed the gate (it said passed: true).
    report["gate"]["passed"] = True
    (out / "report.json").write_text(json.dumps(report))
    assert conform("report", out / "report.json", "--out", tmp_path / "again").returncode == 0
    assert (tmp_path / "again" / "summary.md").read_text().splitlines()[0] == summary.splitlines()[0]
    assert 'class="gate gate-fail"' in (tmp_path / "again" / "report.html").read_text()


def _report(results, passed, incomplete=False, strict=False, stale=()):
    return {"schema": "conform.report/1", "created": "2026-01-01T00:00:00+00:00", "duration_s": 1.0,
            "incomplete": incomplete, "gate": {"passed": passed, "strict": strict}, "environment": {"backends": {}},
            "summary": {}, "stale_divergences": list(stale), "results": results}


def test_junit_counts_a_failure_or_error_exactly_when_the_gate_fails():
    import xmlschema
    schema = xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "junit-10.xsd"))
    ok = [{"case": "a", "backend": "numpy", "verdict": "pass"},
          {"case": "b", "backend": "numpy", "verdict": "xpass", "divergence": {"id": "F9"}}]
    stale = [{"id": "F7", "file": "cases/known_divergences.yaml", "line": 4, "reason": "matches no result"}]
    reports = [
        (_report(ok, passed=True), True),
        (_report(ok, passed=True, stale=stale), True),                  # stale fails only with --strict
        (_report(ok, passed=False, strict=True), False),                # xpass fails with --strict
        (_report(ok, passed=False, strict=True, stale=stale), False),
        (_report(ok, passed=False, incomplete=True), False),
        (_report([], passed=False, incomplete=True), False),            # interrupted before any result
    ]
    for report, passes in reports:
        text = junit.render(report)
        schema.validate(text)
        root = ET.fromstring(text)
        assert (int(root.get("failures")) + int(root.get("errors")) == 0) == passes, text
