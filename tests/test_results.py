"""A run's results read back from its journal (``harness.results``), and the reports streamed from them.

Real runs on the numpy backend (forward and the three gradients of each case, which numpy reports as
``unsupported``): the sequence is exactly the journal's records in report order, also after ``--resume``
(kept records reclassified) and with a torn last line; every report rendered from it equals the report
rendered from the same records held in a list; and rendering keeps a few hundred bytes per result, not
the records.
"""

from __future__ import annotations

import dataclasses
import json
import tracemalloc
from array import array

import pytest

from harness import divergences
from harness.cases import load_suite
from harness.journal import read_journal
from harness.report import html, json_report, junit, markdown
from harness.report.publish import Generation, publish_reports
from harness.results import GRADIENT_ORDER, Results
from harness.runner import RunOptions, RunResult, run
from harness.text import clean
from tests.helpers import write

# File order is not id order: the report follows the file.
SUITE = """
op: conv2d_transpose
defaults: {mode: both, input: [1, 2, 4, 4], out_channels: 2, kernel_size: 3, bias: true}
cases:
  - id: c-3
  - id: a-1
    stride: 2
  - id: b-2
    padding: 1
  - id: rejected
    padding: 3
    expect: {error: true}
"""

REGISTRY = """
divergences:
  - id: T1
    cases: [a-1]
    backend: numpy
    verdict: value_mismatch
    reason: a test entry that matches a passing result
"""


def _run(tmp_path, resume=False, registry=None):
    cases = load_suite([str(write(tmp_path / "suite.yaml", SUITE))])
    options = RunOptions(backends=["numpy"], out=tmp_path / "out", resume=resume,
                         registry=registry or divergences.Registry())
    return cases, run(cases, options)


def _report_order(cases, records):
    position = {c.id: i for i, c in enumerate(cases)}
    return sorted(records, key=lambda r: (position[r["case"]], GRADIENT_ORDER.get(r.get("gradient"), 4), r["backend"]))


def test_results_are_the_journals_records_in_report_order(tmp_path):
    cases, result = _run(tmp_path)
    assert isinstance(result.results, Results)
    journal = read_journal(tmp_path / "out" / "results.jsonl")
    records = list(result.results)
    assert len(result.results) == len(journal) == 13   # three cases × (forward + 3 gradients), one rejection
    assert records == _report_order(cases, journal)
    assert list(dict.fromkeys(r["case"] for r in records)) == ["c-3", "a-1", "b-2", "rejected"]
    assert [r["gradient"] for r in records[:4]] == [None, "x", "w", "b"]
    assert [result.results[i] for i in range(len(result.results))] == records == list(result.results)
    assert result.results[-1] == records[-1] and result.results[1:3] == records[1:3]
    with pytest.raises(IndexError):
        result.results[len(records)]


def test_resume_reads_back_the_kept_records_reclassified_and_ignores_a_torn_line(tmp_path):
    _run(tmp_path)
    journal = tmp_path / "out" / "results.jsonl"
    with journal.open("ab") as handle:     # an earlier run killed while writing its last record
        handle.write(b'{"case": "a-1", "backend": "numpy", "verd')
    registry = write(tmp_path / "known.yaml", REGISTRY)
    cases, result = _run(tmp_path, resume=True, registry=divergences.load(registry))
    records = list(result.results)
    assert len(records) == 13 and records == _report_order(cases, read_journal(journal))
    a1 = next(r for r in records if r["case"] == "a-1" and r["gradient"] is None)
    assert a1["verdict"] == "xpass" and a1["divergence"]["id"] == "T1"   # judged afresh, and read back so
    assert journal.read_bytes().endswith(b"}\n")                           # the torn line is gone


def _reports(result, out):
    lazy = clean(json_report.build(result))
    eager = clean(json_report.build(dataclasses.replace(result, results=list(result.results))))
    return lazy, eager


def test_every_report_streamed_from_the_journal_equals_the_in_memory_rendering(tmp_path):
    _, result = _run(tmp_path)
    result.created = "2026-01-01T00:00:00+00:00"
    out = tmp_path / "out"
    lazy, eager = _reports(result, out)
    assert isinstance(eager["results"], list) and not isinstance(lazy["results"], list)
    # What report.json was before it was streamed: the whole report in one json.dumps.
    assert json_report.render(lazy) == json.dumps(eager, separators=(",", ":")) + "\n"
    assert html.render(lazy, out, out) == html.render(eager, out, out)
    assert junit.render(lazy) == junit.render(eager)
    assert markdown.render(lazy) == markdown.render(eager)
    with Generation(out) as gen:
        publish_reports(gen, lazy, gen.path, gen.path)
    assert (out / "report.json").read_text() == json_report.render(eager)
    assert (out / "junit.xml").read_text() == junit.render(eager)
    assert (out / "summary.md").read_text() == markdown.render(eager)
    assert (out / "report.html").read_text() == html.render(eager, gen.path, gen.path)


def test_a_non_finite_metric_is_cleaned_as_it_is_read(tmp_path):
    journal = tmp_path / "results.jsonl"
    records = [{"case": "c", "backend": "numpy", "verdict": "value_mismatch", "metrics": {"bound_ratio": float("inf")},
                "reason": "lone \ud800 surrogate"}, {"case": "d", "backend": "numpy", "verdict": "pass"}]
    lines = [(json.dumps(r, sort_keys=True) + "\n").encode() for r in records]
    journal.write_bytes(b"".join(lines))
    results = Results(journal, array("q", [0, len(lines[0])]), array("l", map(len, lines)))
    report = json_report.build(RunResult(results=results, environment={}, duration_s=0.0))
    assert list(report["results"]) == [{**records[0], "metrics": {"bound_ratio": "inf"}, "reason": "lone \ufffd surrogate"},
                                       records[1]]
    assert report["gate"]["passed"] is False and report["summary"]["by_verdict"] == {"pass": 1, "value_mismatch": 1}


def _journal(path, n: int, record: dict) -> Results:
    offsets, lengths, at = array("q"), array("l"), 0
    with path.open("wb") as handle:
        for i in range(n):
            line = (json.dumps({**record, "case": f"c-{i}", "verdict": "value_mismatch" if i % 25 == 0 else "pass"},
                               sort_keys=True) + "\n").encode()
            handle.write(line)
            offsets.append(at)
            lengths.append(len(line))
            at += len(line)
    return Results(path, offsets, lengths)


def _peak_of_publishing(results: Results, out) -> int:
    tracemalloc.start()
    try:
        report = clean(json_report.build(RunResult(results=results, environment={}, duration_s=0.0, created="x")))
        with Generation(out) as gen:
            publish_reports(gen, report, gen.path, gen.path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_publishing_holds_bytes_per_result_not_the_records(tmp_path):
    _, result = _run(tmp_path)
    record = result.results[0]             # a real forward record; one in 25 of the copies fails
    small, large = 200, 1200
    runs = {}
    for n in (small, small, large):        # the first one pays for imports and the template
        (tmp_path / str(n)).mkdir(exist_ok=True)
        runs[n] = _peak_of_publishing(_journal(tmp_path / str(n) / "results.jsonl", n, record), tmp_path / str(n))
    tracemalloc.start()
    held = list(_journal(tmp_path / "held.jsonl", small, record))
    per_record = tracemalloc.get_traced_memory()[0] / len(held)
    tracemalloc.stop()
    growth = (runs[large] - runs[small]) / (large - small)
    assert per_record > 2000               # what a list of results costs per record
    assert growth < per_record / 10, (growth, per_record)
