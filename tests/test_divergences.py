"""The known-divergence registry: selection, xfail/xpass, stale entries, file errors."""

from __future__ import annotations

import textwrap

import pytest

from harness import divergences
from harness.yamlsrc import ProblemsError


def registry(tmp_path, text):
    path = tmp_path / "known_divergences.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return divergences.load(path)


def result(case, backend="mindspore.nn", verdict="value_mismatch"):
    return {"case": case, "backend": backend, "verdict": verdict, "reason": ""}


ENTRY = """
    divergences:
      - id: F2
        cases: ["output-padding[stride=2,*]", "exact-id"]
        backend: mindspore
        versions: ">=2.0,<3"
        verdict: value_mismatch
        reason: MindSpore fills output_padding rows with zeros
        link: docs/findings.md#f2
"""


def test_matching_failure_becomes_xfail_and_keeps_its_original_verdict(tmp_path):
    reg = registry(tmp_path, ENTRY)
    r = result("output-padding[stride=2,padding=1]")
    reg.classify(r, "2.10.0")
    assert r["verdict"] == "xfail" and r["original_verdict"] == "value_mismatch"
    assert r["divergence"] == {"id": "F2", "reason": "MindSpore fills output_padding rows with zeros",
                               "link": "docs/findings.md#f2"}
    assert reg.stale() == []


def test_brackets_in_globs_are_literal(tmp_path):
    reg = registry(tmp_path, ENTRY)
    # fnmatch would read "[stride=2,*]" as a character class and match "output-paddings"
    for case in ("output-paddings", "output-padding[stride=3,padding=1]", "exact-id-2"):
        r = result(case)
        reg.classify(r, "2.10.0")
        assert r["verdict"] == "value_mismatch", case
    r = result("exact-id")
    reg.classify(r, "2.10.0")
    assert r["verdict"] == "xfail"


def test_backend_and_version_range_select(tmp_path):
    reg = registry(tmp_path, ENTRY)
    other_backend = result("exact-id", backend="torch.functional")
    old_version = result("exact-id")
    reg.classify(other_backend, "2.13.0")
    reg.classify(old_version, "1.9.0")
    assert other_backend["verdict"] == old_version["verdict"] == "value_mismatch"
    local_version = result("exact-id")
    reg.classify(local_version, "2.10.0+cpu")
    assert local_version["verdict"] == "xfail"


def test_pass_becomes_xpass_and_other_failures_keep_their_verdict(tmp_path):
    reg = registry(tmp_path, ENTRY)
    fixed = result("exact-id", verdict="pass")
    reg.classify(fixed, "2.10.0")
    assert fixed["verdict"] == "xpass" and "F2" in fixed["reason"]
    crashed = result("output-padding[stride=2,x]", verdict="crash")
    reg.classify(crashed, "2.10.0")
    assert crashed["verdict"] == "crash"


def test_entries_matching_nothing_are_stale(tmp_path):
    reg = registry(tmp_path, ENTRY + """
      - id: old
        cases: "gone-*"
        backend: tf.nn
        verdict: [shape_mismatch, value_mismatch]
        reason: fixed upstream long ago, entry forgotten
    """)
    reg.classify(result("exact-id"), "2.10.0")
    stale = reg.stale()
    assert [s["id"] for s in stale] == ["old"]
    assert stale[0]["line"] == 10 and stale[0]["file"].endswith("known_divergences.yaml")


@pytest.mark.parametrize("body, field, message", [
    ("      - id: X\n        cases: a\n        backend: tf.nn\n        verdict: wrong\n        reason: a reason long enough\n",
     "divergences.0.verdict", "Input should be"),
    ("      - id: X\n        cases: a\n        backend: tf.nn\n        verdict: crash\n        reason: short\n",
     "divergences.0.reason", "at least 10"),
    ("      - id: X\n        cases: a\n        backend: tf.nn\n        versions: '>>2'\n        verdict: crash\n"
     "        reason: a reason long enough\n", "divergences.0.versions", "not a version range"),
    ("      - id: X\n        cases: a\n        backend: tf.nn\n        verdict: crash\n        reason: a reason long enough\n"
     "        extra: 1\n", "divergences.0.extra", "Extra inputs"),
])
def test_malformed_entries_name_file_line_and_field(tmp_path, body, field, message):
    with pytest.raises(ProblemsError) as info:
        registry(tmp_path, "    divergences:\n" + textwrap.indent(textwrap.dedent(body), "    "))
    (problem,) = info.value.problems
    assert problem.field == field and message in problem.message
    assert problem.line >= 2


def test_duplicate_entry_ids_are_refused(tmp_path):
    entry = "      - id: X\n        cases: a\n        backend: tf.nn\n        verdict: crash\n        reason: a reason long enough\n"
    with pytest.raises(ProblemsError) as info:
        registry(tmp_path, "    divergences:\n" + textwrap.indent(textwrap.dedent(entry * 2), "    "))
    assert "duplicate id 'X'" in info.value.problems[0].message


def test_the_shipped_registry_loads():
    reg = divergences.load(__import__("pathlib").Path(__file__).parents[1] / "cases" / "known_divergences.yaml")
    assert reg.entries and all(len(e.reason) > 30 for e in reg.entries)


def test_entries_for_backends_that_did_not_run_are_not_stale(tmp_path):
    reg = registry(tmp_path, ENTRY)
    reg.classify(result("other-case", backend="torch.functional", verdict="pass"), "2.13.0")
    assert reg.stale(["torch.functional"]) == []
    assert [s["id"] for s in reg.stale(["torch.functional", "mindspore.nn"])] == ["F2"]
