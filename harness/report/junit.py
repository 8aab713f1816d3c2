"""junit.xml: one testcase per result, for CI viewers (Jenkins, GitLab, GitHub annotations).

A result is a (case, backend, gradient): the testcase is named by the case id
for the forward output and by the case id plus ``.grad_x`` / ``.grad_w`` /
``.grad_b`` for a gradient result (``gradients.junit_name``), so each name is
distinct and stays the same from run to run; the classname is
``conform.<backend>`` for both.

The file follows the Jenkins xUnit plugin's ``junit-10.xsd`` (the schema
Jenkins and GitLab read; ``tests/data/junit-10.xsd``, checked by the tests):
a ``<testsuites>`` root, one ``<testsuite>`` per backend (``tests``,
``failures``, ``errors``, ``skipped``, ``time``), ``<testcase name classname
time>``.

Verdict mapping:

=====================================================  ==========================================
``pass``                                                passes
``xfail``                                               passes; ``<system-out>`` names the known divergence
``xpass``                                               ``<failure>`` with ``--strict``, else passes with a note
``shape_mismatch``, ``value_mismatch``, ``missing_error``  ``<failure>`` (the backend answered wrongly)
``unexpected_error``, ``crash``, ``timeout``            ``<error>`` (the backend did not answer)
``unsupported``, ``skipped``                            ``<skipped>`` with the reason
=====================================================  ==========================================

The gate can fail without a failing result: the run was interrupted, or
``--strict`` found stale registry entries. A CI job that reads only junit.xml
would then see every testcase pass, so these become testcases of a
``conform`` testsuite: ``run completed`` is an ``<error>`` when the run is
incomplete (nothing answered wrongly; the results that would have been
judged simply do not exist, the same class as a worker that never answered),
and each stale entry under ``--strict`` is a ``<failure>``. So junit.xml
counts a failure or an error exactly when the report's ``gate.passed`` is
false.

The file is streamed (``write_to``): a first pass over the results counts
each backend's testsuite, the tree is built with one placeholder element per
backend instead of its testcases, and the placeholders are replaced by the
testcases as they are read, each serialized by ElementTree at its depth. The
text is the same as ``ET.indent`` of the whole tree (``render``), without
the tree of every result in memory.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import IO

from harness.report import atomic_write
from harness.report import claims as claim_reports
from harness.report.gradients import gradient_of, junit_name

FAILURE = {"shape_mismatch", "value_mismatch", "missing_error"}
ERROR = {"unexpected_error", "crash", "timeout"}
SKIPPED = {"unsupported", "skipped"}

# XML 1.0 cannot carry most control characters or lone surrogates, even escaped; DEL and C1 controls
# (CSI is \x9b) are legal XML but a terminal showing the file would obey them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _text(value) -> str:
    return _INVALID_XML.sub("\ufffd", "" if value is None else str(value))


def _seconds(ms) -> str:
    return f"{(ms or 0) / 1000:.6f}" if isinstance(ms, (int, float)) else "0"


def _details(r: dict) -> str:
    lines = [f"case: {r['case']}", f"backend: {r['backend']}", f"verdict: {r['verdict']}",
             f"file: {r.get('file')}:{r.get('line')}"]
    if gradient_of(r) is not None:
        lines.insert(2, f"gradient: ∂{gradient_of(r)} (vector–Jacobian product)"
                        + (" - the forward call itself failed" if r.get("forward_failed") else ""))
    if r.get("reason"):
        lines.append(f"reason: {r['reason']}")
    if r.get("actual_shape") is not None:
        expected = r.get("expected_shape")
        lines.append(f"shape: {r['actual_shape']} " + (f"(expected {expected})" if expected is not None
                                                        else "(the case expects rejection)"))
    for key, value in (r.get("metrics") or {}).items():
        lines.append(f"{key}: {value}")
    if r.get("error"):
        lines.append(f"error: {r['error'].get('type')}: {r['error'].get('message')}")
    if r.get("resembles"):   # a near miss of a known divergence (harness/divergences.py)
        near = r["resembles"]
        lines.append(f"resembles: {near.get('id')} (differs in: {', '.join(near.get('failed_conditions') or [])})"
                     + (f" {near['link']}" if near.get("link") else ""))
    if r.get("native_call"):
        lines.append(f"native call: {r['native_call']}")
    if r.get("gradient_call"):
        lines.append(f"gradient call: {r['gradient_call']}")
    if r.get("repro"):
        lines.append(f"reproducer: {r['repro']}")
    return "\n".join(lines)


def _category(verdict: str, strict: bool) -> str:
    """How a verdict counts: ``failures``, ``errors``, ``skipped``, or "" (passes)."""
    if verdict in FAILURE or (verdict == "xpass" and strict):
        return "failures"
    if verdict in ERROR or verdict not in SKIPPED | {"pass", "xfail", "xpass"}:   # a newer verdict: never hidden
        return "errors"
    return "skipped" if verdict in SKIPPED else ""


def _testcase(r: dict, backend: str, strict: bool) -> ET.Element:
    """The ``<testcase>`` of one result."""
    verdict = r["verdict"]
    case = ET.Element("testcase", name=_text(junit_name(r)), classname=_text(f"conform.{backend}"),
                      time=_seconds(r.get("duration_ms")))
    message = _text(f"{verdict}: {r.get('reason') or verdict}")[:1000]
    kind = _category(verdict, strict)
    if kind in ("failures", "errors"):
        node = ET.SubElement(case, kind[:-1], message=message, type=_text(verdict))
        node.text = _text(_details(r))
    elif kind == "skipped":
        ET.SubElement(case, "skipped", message=message, type=verdict)
    elif verdict in ("xfail", "xpass"):
        divergence = r.get("divergence") or {}
        note = (f"{verdict}: known divergence {divergence.get('id', '?')}"
                + (f" expected {r.get('original_verdict')}" if r.get("original_verdict") else "")
                + f": {divergence.get('reason', '')}\n{_details(r)}")
        ET.SubElement(case, "system-out").text = _text(note)
    return case


def _placeholder(n: int) -> str:
    # Element names are never written from report text (that is escaped), so this tag is the skeleton's own.
    return f"conform-testcases-{n}"


def _skeleton(report: dict) -> tuple[ET.Element, list[str]]:
    """The whole tree with one placeholder element per backend's testsuite in place of its testcases, and
    the backends in order (one pass over the results: counts and times only)."""
    strict = bool((report.get("gate") or {}).get("strict"))
    stats: dict[str, dict] = {}
    for r in report.get("results") or []:
        s = stats.setdefault(r["backend"], {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0})
        s["tests"] += 1
        s["time"] += float(_seconds(r.get("duration_ms")))
        kind = _category(r["verdict"], strict)
        if kind:
            s[kind] += 1
    root = ET.Element("testsuites", name="conform")
    totals = defaultdict(int)
    total_time = 0.0
    for n, (backend, s) in enumerate(stats.items()):
        suite = ET.SubElement(root, "testsuite", name=_text(backend))
        env = ((report.get("environment") or {}).get("backends") or {}).get(backend) or {}
        if env:
            props = ET.SubElement(suite, "properties")
            for key in ("framework", "version"):
                ET.SubElement(props, "property", name=key, value=_text(env.get(key) or ""))
        ET.SubElement(suite, _placeholder(n))
        for key in ("tests", "failures", "errors", "skipped"):
            suite.set(key, str(s[key]))
            totals[key] += s[key]
        suite.set("time", f"{s['time']:.6f}")
        if report.get("created"):
            suite.set("timestamp", _text(report["created"]))
        total_time += s["time"]
    for key, value in claim_reports.junit(root, report, _text).items():
        totals[key] += value
    for key, value in _gate_suite(root, report, strict).items():
        totals[key] += value
    for key in ("tests", "failures", "errors"):
        root.set(key, str(totals[key]))
    root.set("time", f"{total_time:.6f}")
    return root, list(stats)


def _gate_suite(root: ET.Element, report: dict, strict: bool) -> dict[str, int]:
    """Testcases for what fails the gate outside any one result; their counts (none: no suite)."""
    problems = []
    if report.get("incomplete"):
        problems.append(("run completed", "error", "incomplete",
                         f"the run stopped after {len(report.get('results') or [])} results (interrupted, or a case "
                         f"file changed while it ran: those cases were not run); the pairs not run are not judged, so "
                         f"the gate cannot pass (`conform run --resume` completes it)"))
    if strict:
        for entry in report.get("stale_divergences") or []:
            problems.append((f"known divergence {entry.get('id')}", "failure", "stale",
                             f"stale known divergence {entry.get('id')} ({entry.get('file')}:{entry.get('line')}): "
                             f"{entry.get('reason')}"))
    if not problems:
        return {}
    suite = ET.SubElement(root, "testsuite", name="conform", tests=str(len(problems)), skipped="0", time="0")
    counts = {"tests": len(problems), "failures": 0, "errors": 0}
    for name, kind, type_, message in problems:
        case = ET.SubElement(suite, "testcase", name=_text(name), classname="conform.gate", time="0")
        ET.SubElement(case, kind, message=_text(message)[:1000], type=type_).text = _text(message)
        counts[kind + "s"] += 1
    suite.set("failures", str(counts["failures"]))
    suite.set("errors", str(counts["errors"]))
    if report.get("created"):
        suite.set("timestamp", _text(report["created"]))
    return counts


def write_to(handle: IO[str], report: dict) -> None:
    """Write junit.xml, each backend's testcases serialized as its results are read (module docstring)."""
    strict = bool((report.get("gate") or {}).get("strict"))
    root, backends = _skeleton(report)
    ET.indent(root, space=" ")
    text = ET.tostring(root, encoding="unicode")
    handle.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    results = report.get("results") or []
    for n, backend in enumerate(backends):
        before, text = text.split(f"<{_placeholder(n)} />", 1)
        handle.write(before)
        first = True
        for r in results:       # one pass per backend: a few, and nothing kept
            if r["backend"] != backend:
                continue
            case = _testcase(r, backend, strict)
            ET.indent(case, space=" ", level=2)
            handle.write(("" if first else "\n  ") + ET.tostring(case, encoding="unicode"))
            first = False
    handle.write(text + "\n")


def render(report: dict) -> str:
    text = io.StringIO()
    write_to(text, report)
    return text.getvalue()


def write(report: dict, out: Path) -> Path:
    path = Path(out) / "junit.xml"
    atomic_write(path, render(report))
    return path
