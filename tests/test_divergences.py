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
     "divergences[0].verdict", "Input should be"),
    ("      - id: X\n        cases: a\n        backend: tf.nn\n        verdict: crash\n        reason: short\n",
     "divergences[0].reason", "at least 10"),
    ("      - id: X\n        cases: a\n        backend: tf.nn\n        versions: '>>2'\n        verdict: crash\n"
     "        reason: a reason long enough\n", "divergences[0].versions", "not a version range"),
    ("      - id: X\n        cases: a\n        backend: tf.nn\n        verdict: crash\n        reason: a reason long enough\n"
     "        extra: 1\n", "divergences[0].extra", "Extra inputs"),
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


# --- conditions on parameters (DESIGN.md §8) -------------------------------------------------

SHIPPED = __import__("pathlib").Path(__file__).parents[1] / "cases" / "known_divergences.yaml"


def conv(case="user-case", backend="mindspore.nn", verdict="value_mismatch", dtype="float32", data=None, **params):
    """A result record of a conv2d_transpose case with canonical ``params``."""
    p = {"input": [1, 4, 8, 8], "layout": "NCHW", "out_channels": 4, "kernel_size": [3, 3], "stride": [2, 2],
         "padding": [1, 1, 1, 1], "output_padding": [0, 0], "dilation": [1, 1], "groups": 1, "bias": False,
         "output_shape": None}
    p.update(params)
    return {"case": case, "op": "conv2d_transpose", "backend": backend, "verdict": verdict, "reason": "",
            "params": p, "dtype": dtype, "data": data or {"x": "normal", "w": "normal", "b": None, "seed": 0}}


@pytest.mark.parametrize("record, entry", [
    # a user's U-Net decoder step: k 3, s 2, padding 1, output_padding 1 is exactly F2
    (conv("unet-up1", input=[1, 64, 16, 16], out_channels=32, output_padding=[1, 1], bias=True), "F2"),
    (conv("unet-up1-nobias", input=[1, 64, 16, 16], out_channels=32, output_padding=[1, 1]), "F2"),
    # output_shape that implies output_padding, crop on the bottom only
    (conv("fuzz-9-1", padding=[0, 2, 0, 0], output_shape=[16, 18], dtype="float16"), "F2"),
    # crop 0 on the padded side, but a bias: MindSpore pads after adding it
    (conv("fuzz-9-2", padding=[1, 0, 0, 0], output_padding=[1, 0], bias=True), "F2"),
    # a fuzz case with an effective kernel below the stride and 'valid' is exactly F1
    (conv("fuzz-9-3", verdict="shape_mismatch", padding="valid", kernel_size=[1, 4], stride=[2, 3]), "F1"),
    (conv("fuzz-9-4", verdict="shape_mismatch", padding="valid", kernel_size=[2, 2], stride=[1, 3],
          layout="NHWC", input=[2, 5, 5, 3], out_channels=2), "F1"),
])
def test_shipped_entries_recognise_a_divergence_by_its_parameters(record, entry):
    reg = divergences.load(SHIPPED)
    reg.classify(record, "2.10.0")
    assert record["verdict"] == "xfail" and record["divergence"]["id"].startswith(entry + "-")
    assert record["divergence"]["href"].startswith("file://") and record["divergence"]["href"].endswith(
        "findings.md#" + entry.lower())


@pytest.mark.parametrize("record", [
    conv(output_padding=[1, 1], padding=[0, 0, 0, 0]),               # added rows past F: zeros are right
    conv(output_padding=[1, 0], padding=[2, 0, 2, 2]),               # crop on the other side only
    conv(output_padding=[1, 1], input=[0, 4, 8, 8], bias=True),      # empty batch: nothing to differ
    conv(padding="same", kernel_size=[1, 1], stride=[3, 3], bias=True),  # pad_mode='same' keeps the bias
    conv(output_padding=[1, 1], data={"x": "impulse", "w": "normal"}),   # the impulse never reaches the rows
    conv(verdict="shape_mismatch", padding="valid", kernel_size=[3, 3], stride=[2, 2]),   # K ≥ s
    conv(verdict="shape_mismatch", padding="valid", kernel_size=[1, 1], stride=[2, 2],
         output_shape=[16, 16]),                                         # posed as pad_mode='pad'
    conv(verdict="shape_mismatch", padding="valid", kernel_size=[1, 1], stride=[2, 2], dilation=[1, 1],
         backend="tf.nn"),
])
def test_shipped_entries_do_not_match_cases_without_the_divergence(record):
    reg = divergences.load(SHIPPED)
    assert reg.match(record, "2.10.0") is None


def test_unsupported_and_skipped_results_are_not_observations(tmp_path):
    reg = divergences.load(SHIPPED)
    record = conv(verdict="unsupported", dtype="float64", output_padding=[1, 1], bias=True)
    reg.classify(record, "2.10.0")
    assert record["verdict"] == "unsupported" and "divergence" not in record


WHEN = """
    divergences:
      - id: W
        op: conv2d_transpose
        backend: mindspore.nn
        when:
          padding_form: explicit
          stride: {any: {ge: 2}}
          dtype: [float16, float32]
          output_padding: {not: 0}
        verdict: value_mismatch
        reason: a reason long enough
        link: https://example.org/w
"""


def test_a_failure_close_to_an_entry_resembles_it(tmp_path):
    reg = registry(tmp_path, WHEN)
    near = conv(stride=[1, 1], output_padding=[0, 0], verdict="value_mismatch")   # two conditions fail
    nearer = conv(dtype="bfloat16", output_padding=[1, 0])                          # one condition fails
    for r in (near, nearer):
        reg.classify(r, "2.10.0")
    assert "resembles" not in near and near["verdict"] == "value_mismatch"
    assert nearer["verdict"] == "value_mismatch" and "divergence" not in nearer
    assert nearer["resembles"] == {"id": "W", "link": "https://example.org/w", "href": "https://example.org/w",
                                   "failed_conditions": ["dtype"]}
    other_verdict = conv(dtype="bfloat16", output_padding=[1, 0], verdict="crash")
    reg.classify(other_verdict, "2.10.0")
    assert "resembles" not in other_verdict
    assert [s["id"] for s in reg.stale()] == ["W"]   # resembling is not matching


def test_the_shipped_registry_says_what_a_near_miss_resembles():
    reg = divergences.load(SHIPPED)
    # MindSpore, 'valid', shape_mismatch, but K ≥ s: not F1, and the report says how it differs
    r = conv(verdict="shape_mismatch", padding="valid", kernel_size=[3, 3], stride=[2, 2])
    reg.classify(r, "2.10.0")
    assert r["verdict"] == "shape_mismatch"
    assert r["resembles"]["id"].startswith("F1-") and r["resembles"]["failed_conditions"] == ["kernel_below_stride"]


def test_resume_unclassifies_resemblance_too(tmp_path):
    from harness.records import unclassify
    reg = registry(tmp_path, WHEN)
    r = conv(dtype="bfloat16", output_padding=[1, 0])
    reg.classify(r, "2.10.0")
    unclassify(r)
    assert "resembles" not in r


@pytest.mark.parametrize("condition, value, expected", [
    ("2", [2, 2], True), ("2", [2, 3], False),                        # a scalar holds on every axis
    ("{any: 3}", [2, 3], True), ("{all: {gt: 1}}", [2, 3], True),
    ("{eq: [2, 3]}", [2, 3], True), ("{eq: [2, 3]}", [3, 2], False),  # a list operand: the whole value
    ("[[2, 3], [3, 2]]", [3, 2], True), ("[2, 3]", [3, 3], True), ("[2, 3]", [3, 4], False),
    ("{not: 0}", [0, 1], True), ("{not: 0}", [0, 0], False),
    ("{gt: 0}", "valid", False), ("true", 1, False), ("1", True, False), ("null", None, True),
    ("{ge: 1, lt: 3}", 2, True), ("{ge: 1, lt: 3}", 3, False), ("{in: [same, valid]}", "same", True),
    ("{ne: valid}", "same", True),
])
def test_condition_operators(condition, value, expected):
    import yaml
    from harness import conditions
    parsed, problems = conditions.parse({"v": yaml.safe_load(condition)}, {"v": ""}, ())
    assert not problems
    assert parsed.holds({"v": value}) is expected


def test_any_of_and_on_some_axis():
    from harness import conditions
    names = {"a": "", "b": "", "c": ""}
    parsed, _ = conditions.parse({"any_of": [{"a": 1}, {"b": {"any": 1}}], "on_some_axis": {"b": 1, "c": True}}, names, ())
    assert parsed.holds({"a": 0, "b": [1, 0], "c": [True, False]})
    assert parsed.failing({"a": 0, "b": [1, 0], "c": [False, True]}) == ["on_some_axis"]
    assert parsed.failing({"a": 0, "b": [0, 0], "c": [True, True]}) == ["any_of", "on_some_axis"]


def test_any_of_inside_on_some_axis_is_judged_per_axis():
    # Validated like any condition set, so it must also be evaluated like one: per axis, every value at that axis.
    from harness import conditions
    names = {"a": "", "b": "", "c": ""}
    parsed, problems = conditions.parse({"on_some_axis": {"c": True, "any_of": [{"a": 1}, {"b": 1}]}}, names, ())
    assert not problems
    assert parsed.holds({"a": [0, 0], "b": [0, 1], "c": [False, True]})       # axis 1: c and b
    assert not parsed.holds({"a": [1, 0], "b": [0, 1], "c": [False, False]})  # c holds on no axis
    assert not parsed.holds({"a": [0, 1], "b": [0, 0], "c": [True, False]})   # a, c on different axes
    nested, _ = conditions.parse({"on_some_axis": {"on_some_axis": {"a": 1}}}, names, ())
    assert nested.holds({"a": [0, 1]}) and not nested.holds({"a": [0, 0]})


@pytest.mark.parametrize("body, field, message", [
    ("        op: conv2d_transpose\n        backend: tensorflow.nn\n        when: {padding: valid}\n", "divergences[0].backend",
     "unknown backend 'tensorflow.nn'"),
    ("        backend: tf.nn\n", "divergences[0]", "an empty selector"),
    ("        op: conv2d_transpose\n        backend: tf.nn\n        when: {}\n", "divergences[0].when", "non-empty mapping"),
    ("        backend: tf.nn\n        cases: []\n", "divergences[0].cases", "non-empty"),
    ("        op: conv2d_transpose\n        backend: tf.nn\n        when:\n          padding: valid\n          strides: 2\n",
     "divergences[0].when.strides", "unknown condition name (did you mean 'stride'?)"),
    ("        op: conv2d_transpose\n        backend: tf.nn\n        when:\n          any_of:\n            - {kernel_below_strid: true}\n",
     "divergences[0].when.any_of[0].kernel_below_strid", "did you mean 'kernel_below_stride'?"),
    ("        op: conv2d_transpose\n        backend: tf.nn\n        when: {stride: {gte: 2}}\n", "divergences[0].when.stride",
     "unknown operator 'gte'"),
    ("        op: conv2d_transpose\n        backend: tf.nn\n        when: {stride: {gt: two}}\n", "divergences[0].when.stride",
     "gt: should be a valid integer"),
    ("        backend: tf.nn\n        op: conv3d\n        when: {stride: 2}\n", "divergences[0].op",
     "unknown or missing operator 'conv3d'"),
])
def test_selector_problems_name_file_line_and_field(tmp_path, body, field, message):
    text = ("divergences:\n  - id: X\n" + body
            + "    verdict: crash\n    reason: a reason long enough\n").replace("\n        ", "\n    ")
    with pytest.raises(ProblemsError) as info:
        registry(tmp_path, text)
    (problem,) = info.value.problems
    assert problem.field == field and message in problem.message, problem
    lines = text.splitlines()
    assert field.split(".")[-1].split("[")[0] in lines[problem.line - 1] or problem.line == 2, problem


def test_links_reports_may_follow(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "f.md").write_text("# F\n")
    folder = tmp_path / "cases"
    folder.mkdir()
    assert divergences._href("docs/f.md#f2", folder) == (tmp_path / "docs" / "f.md").as_uri() + "#f2"
    assert divergences._href("javascript:alert(1)", folder) is None
    assert divergences._href("docs/missing.md", folder) is None
    assert divergences._href("https://x.org/a#b", folder) == "https://x.org/a#b"


def test_a_run_of_a_suite_subfolder_uses_the_suites_registry(tmp_path):
    """`conform run cases/conv2d_transpose` finds cases/known_divergences.yaml (the nearest one above)."""
    from harness.cli import _nearest_registry
    suite = tmp_path / "suite"
    (suite / "op" / "deeper").mkdir(parents=True)
    (suite / "known_divergences.yaml").write_text("divergences: []\n")
    (suite / "op" / "deeper" / "c.yaml").write_text("")
    assert _nearest_registry([suite / "op" / "deeper"]) == (suite / "known_divergences.yaml").absolute()
    assert _nearest_registry([suite / "op" / "deeper" / "c.yaml"]) == (suite / "known_divergences.yaml").absolute()
    (suite / "op" / "known_divergences.yaml").write_text("divergences: []\n")
    assert _nearest_registry([suite / "op" / "deeper"]) == (suite / "op" / "known_divergences.yaml").absolute()
