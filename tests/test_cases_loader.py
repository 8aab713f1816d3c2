"""Case files (DESIGN.md §4): ``harness.cases`` and ``harness.yamlsrc``.

Every malformed file must give ``file:line: field: message`` with the exact
file, line and field; line numbers are found by searching the written text for
a marker, never hard-coded twice.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from harness.cases import MAX_MATRIX_POINTS, load_file, load_suite
from harness.yamlsrc import Problem, ProblemsError, load_yaml

HEAD = "op: conv2d_transpose\ncases:\n"


def write(tmp_path: Path, text: str, name: str = "cases.yaml") -> tuple[Path, str]:
    text = textwrap.dedent(text).lstrip("\n")
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, text


def line(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the ``nth`` line containing ``needle``."""
    hits = [i + 1 for i, row in enumerate(text.splitlines()) if needle in row]
    assert len(hits) > nth, f"{needle!r} not in text"
    return hits[nth]


def problems(path: Path) -> list[Problem]:
    with pytest.raises(ProblemsError) as info:
        load_file(path)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return info.value.problems


def only(probs: list[Problem], field: str) -> Problem:
    found = [p for p in probs if p.field == field]
    assert len(found) == 1, probs
    return found[0]


VALID_CASE = """
  - id: ok
    input: [1, 2, 3, 3]
    out_channels: 2
    kernel_size: 3
"""


# --------------------------------------------------------------------------- well-formed files


def test_design_example_loads(tmp_path):
    path, text = write(tmp_path, """
        op: conv2d_transpose
        defaults:            # optional, merged into every case of the file
          dtype: float32
        cases:
          - id: seed-1-explicit-zero-padding     # unique across the suite
            source: API-mapping page, code example 1
            input: [1, 3, 16, 50]                # N, C, H, W (in `layout`)
            layout: NCHW                         # NCHW | NHWC
            out_channels: 64
            kernel_size: 4                       # int or [kh, kw]
            stride: 1                            # int or [sh, sw]
            padding: [0, 0, 0, 0]                # same | valid | int | [top, bottom, left, right]
            output_padding: 0                    # int or [oh, ow]
            dilation: 1                          # int or [dh, dw]
            groups: 1
            bias: false
            output_shape: null                   # optional [H_out, W_out]
            data: {x: normal, w: normal, seed: 0}  # normal | uniform | ones | arange | impulse
            expect:
              shape: [1, 64, 19, 53]             # or: error: true  (the call must be rejected)
          - id: stride-padding-sweep
            input: [2, 4, 7, 9]
            out_channels: 3
            kernel_size: [3, 2]
            matrix:                              # cartesian product: one case per point,
              stride: [1, 2, 3]                  # ids get a suffix such as [stride=2,padding=same]
              padding: [same, valid]
    """)
    cases = load_file(path)
    assert [c.id for c in cases] == [
        "seed-1-explicit-zero-padding",
        "stride-padding-sweep[stride=1,padding=same]",
        "stride-padding-sweep[stride=1,padding=valid]",
        "stride-padding-sweep[stride=2,padding=same]",
        "stride-padding-sweep[stride=2,padding=valid]",
        "stride-padding-sweep[stride=3,padding=same]",
        "stride-padding-sweep[stride=3,padding=valid]",
    ]
    seed = cases[0]
    assert seed.op == "conv2d_transpose" and seed.file == str(path)
    assert seed.line == line(text, "- id: seed-1")
    assert seed.expected_shape == (1, 64, 19, 53)
    assert seed.resolved.output_shape == (1, 64, 19, 53)
    assert seed.common.source == "API-mapping page, code example 1"
    assert seed.dtype == "float32"
    assert not seed.expects_error
    assert seed.lines[("kernel_size",)] == line(text, "kernel_size: 4")
    # stride 2, same: H_out = 7·2 = 14, W_out = 9·2 = 18; stride 3, valid: F = 6·3+3 = 21, 8·3+2 = 26
    by_id = {c.id: c for c in cases}
    assert by_id["stride-padding-sweep[stride=2,padding=same]"].expected_shape == (2, 3, 14, 18)
    assert by_id["stride-padding-sweep[stride=3,padding=valid]"].expected_shape == (2, 3, 21, 26)
    sweep = cases[1:]
    assert all(c.line == line(text, "- id: stride-padding-sweep") for c in sweep)
    assert sweep[2].params.stride == [2, 2] and sweep[2].params.padding == "same"
    assert sweep[2].lines[("stride",)] == line(text, "stride: [1, 2, 3]")


def test_minimal_case_uses_defaults(tmp_path):
    # DESIGN §4: only id, input, out_channels and kernel_size are required.
    path, _ = write(tmp_path, HEAD + VALID_CASE)
    (case,) = load_file(path)
    assert case.params.stride == [1, 1] and case.params.dilation == [1, 1]
    assert case.params.padding == [0, 0, 0, 0] and case.params.output_padding == [0, 0]
    assert case.dtype == "float32"
    assert case.expected_shape == (1, 2, 5, 5)         # k=3: F = 2+3 = 5


def test_defaults_are_merged_and_case_fields_win(tmp_path):
    path, _ = write(tmp_path, """
        op: conv2d_transpose
        defaults:
          dtype: bfloat16
          stride: 2
          out_channels: 4
        cases:
          - id: inherits
            input: [1, 2, 3, 3]
            kernel_size: 3
          - id: overrides
            input: [1, 2, 3, 3]
            kernel_size: 3
            stride: 1
            dtype: float16
    """)
    inherits, overrides = load_file(path)
    assert inherits.dtype == "bfloat16" and inherits.params.stride == [2, 2]
    assert inherits.params.out_channels == 4
    assert inherits.expected_shape == (1, 4, 7, 7)     # F = 2·2+3 = 7
    assert overrides.dtype == "float16" and overrides.params.stride == [1, 1]
    assert overrides.expected_shape == (1, 4, 5, 5)


def test_matrix_ids_and_count(tmp_path):
    path, text = write(tmp_path, HEAD + """
          - id: sweep
            input: [1, 2, 5, 5]
            out_channels: 2
            kernel_size: 3
            matrix:
              stride:
                - 1
                - 2
              padding: [same, valid, 1]
              dtype: [float16, float32]
    """)
    cases = load_file(path)
    assert len(cases) == 2 * 3 * 2
    ids = [c.id for c in cases]
    assert len(set(ids)) == 12
    assert ids[0] == "sweep[stride=1,padding=same,dtype=float16]"
    assert "sweep[stride=2,padding=same,dtype=float32]" in ids
    assert "sweep[stride=2,padding=1,dtype=float16]" in ids
    case = next(c for c in cases if c.id == "sweep[stride=2,padding=valid,dtype=float16]")
    assert case.params.stride == [2, 2] and case.params.padding == "valid" and case.dtype == "float16"
    assert case.expected_shape == (1, 2, 11, 11)      # F = 4·2+3 = 11
    assert case.lines[("stride",)] == line(text, "- 2")
    assert case.lines[("padding",)] == line(text, "padding: [same")
    assert "matrix" not in case.raw_params


def test_matrix_over_list_valued_field(tmp_path):
    path, _ = write(tmp_path, HEAD + """
          - id: k
            input: [1, 2, 5, 5]
            out_channels: 2
            kernel_size: 1
            matrix:
              kernel_size: [3, [3, 2]]
              bias: [true]
    """)
    cases = load_file(path)
    assert [c.id for c in cases] == ["k[kernel_size=3,bias=true]", "k[kernel_size=3x2,bias=true]"]
    assert cases[1].params.kernel_size == [3, 2]
    assert cases[1].expected_shape == (1, 2, 7, 6)


def test_expect_error_case_loads(tmp_path):
    path, _ = write(tmp_path, HEAD + """
          - id: bad-groups
            input: [1, 3, 4, 4]
            out_channels: 4
            kernel_size: 3
            groups: 2
            expect: {error: true}
    """)
    (case,) = load_file(path)
    assert case.expects_error
    assert case.resolved is None
    assert "not divisible by groups 2" in case.invalid_reason
    assert case.expected_shape is None


# --------------------------------------------------------------------------- YAML level


def test_yaml_syntax_error(tmp_path):
    path, text = write(tmp_path, HEAD + """
          - id: a
            input: [1, 2, 3, 3]
            out_channels: 2
           kernel_size: 3
    """)
    (p,) = problems(path)
    assert p.file == str(path)
    assert p.field == "yaml"
    assert p.line == line(text, " kernel_size: 3")
    assert "expected" in p.message


def test_duplicate_key_in_a_mapping(tmp_path):
    path, text = write(tmp_path, HEAD + """
          - id: a
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel_size: 3
            stride: 1
            stride: 2
    """)
    (p,) = problems(path)
    assert p == Problem(str(path), line(text, "stride: 2"), "cases[0].stride",
                        f"duplicate key 'stride' (first on line {line(text, 'stride: 1')})")


def test_python_object_tag_is_refused_and_not_constructed(tmp_path):
    marker = tmp_path / "pwned"
    path, text = write(tmp_path, HEAD + f"""
          - id: a
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel_size: 3
            stride: !!python/object/apply:os.system ["touch {marker}"]
            bias: !!python/object:collections.OrderedDict {{}}
    """)
    probs = problems(path)
    assert not marker.exists()
    stride = only(probs, "cases[0].stride")
    assert stride.line == line(text, "stride: !!python")
    assert "python/object/apply:os.system" in stride.message and "not allowed" in stride.message
    bias = only(probs, "cases[0].bias")
    assert bias.line == line(text, "bias: !!python")


def test_python_tag_on_a_mapping_key_is_a_problem_not_a_crash(tmp_path):
    path, text = write(tmp_path, HEAD + """
          - id: a
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel_size: 3
            !!python/name:os.system x: 1
    """)
    probs = problems(path)   # today: yaml.constructor.ConstructorError escapes load_yaml
    assert any(p.line == line(text, "!!python/name") and "not allowed" in p.message for p in probs), probs


def test_alias_expansion_is_bounded():
    """Anchors/aliases must not blow up: 6 lines here are 10^5 values once expanded."""
    rows = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 5):
        rows.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    try:
        located = load_yaml("\n".join(rows), "bomb.yaml")
    except ProblemsError:
        return                                   # refusing aliases is fine
    # PyYAML shares aliased nodes; a per-path line table must not make them 10^5 entries
    assert len(located.lines) < 1000, len(located.lines)


def test_not_a_mapping(tmp_path):
    path, _ = write(tmp_path, "- 1\n- 2\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (1, "document")


def test_multiple_documents(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "---\nop: conv2d_transpose\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "---"), "yaml")
    assert "another document" in p.message


# --------------------------------------------------------------------------- file level


def test_unknown_op(tmp_path):
    path, text = write(tmp_path, "cases:\n" + VALID_CASE.lstrip("\n") + "op: conv3d_transpose\n")
    (p,) = problems(path)
    assert p.file == str(path) and p.field == "op"
    assert p.line == line(text, "op: conv3d")
    assert "'conv3d_transpose'" in p.message and "conv2d_transpose" in p.message.split("known:")[1]


def test_missing_op(tmp_path):
    path, _ = write(tmp_path, "cases:\n" + VALID_CASE.lstrip("\n"))
    (p,) = problems(path)
    assert (p.line, p.field) == (1, "op")
    assert "None" in p.message


def test_unknown_top_level_key_with_suggestion(tmp_path):
    # the key's line, even when its value is a block mapping that starts on the next line
    path, text = write(tmp_path, "op: conv2d_transpose\ndefault:\n  dtype: float16\ncases:\n" + VALID_CASE.lstrip("\n"))
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "default:"), "default")
    assert "unknown top-level field" in p.message and "did you mean 'defaults'" in p.message


@pytest.mark.parametrize("body", ["cases: []\n", "cases: 3\n", ""])
def test_cases_must_be_a_non_empty_list(tmp_path, body):
    path, _ = write(tmp_path, "op: conv2d_transpose\n" + body)
    (p,) = problems(path)
    assert p.field == "cases" and "non-empty list" in p.message


def test_defaults_must_be_a_mapping(tmp_path):
    path, text = write(tmp_path, "op: conv2d_transpose\ndefaults: [1]\ncases:\n" + VALID_CASE.lstrip("\n"))
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "defaults:"), "defaults")


# --------------------------------------------------------------------------- field level


def test_unknown_key_with_did_you_mean(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    strid: 2\n")
    (p,) = problems(path)
    assert p == Problem(str(path), line(text, "strid: 2"), "strid", "unknown field (did you mean 'stride'?)")


def test_unknown_common_key_with_did_you_mean(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    dtyp: float16\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "dtyp:"), "dtyp")
    assert "did you mean 'dtype'" in p.message


def test_unknown_hyphenated_key_is_named(tmp_path):
    # 'kernel-size' for 'kernel_size' is the most likely typo of all; the problem must
    # name the key and its line, not 'case' at the case's first line.
    path, text = write(tmp_path, HEAD + """
          - id: a
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel-size: 3
    """)
    probs = problems(path)
    unknown = [p for p in probs if "unknown field" in p.message]
    assert len(unknown) == 1, probs
    assert (unknown[0].line, unknown[0].field) == (line(text, "kernel-size"), "kernel-size"), unknown
    assert "did you mean 'kernel_size'" in unknown[0].message


def test_wrong_type_string_stride(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + '    stride: "2"\n')
    probs = problems(path)
    assert probs and all((p.field, p.line) == ("stride", line(text, "stride:")) for p in probs), probs
    assert any("valid integer" in p.message for p in probs)


def test_negative_stride(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    stride: -1\n")
    (p,) = problems(path)
    assert p == Problem(str(path), line(text, "stride: -1"), "stride", "must be ≥ 1, got -1")


def test_wrong_type_nested_field(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    data: {x: gaussian}\n")
    (p,) = problems(path)
    assert p.line == line(text, "data:")
    assert p.field == "data.x"
    assert "normal" in p.message


@pytest.mark.parametrize("missing, field", [("input", "input"), ("kernel_size", "kernel_size"), ("id", "id"),
                                            ("out_channels", "out_channels")])
def test_missing_required_field(tmp_path, missing, field):
    rows = [r for r in VALID_CASE.strip("\n").splitlines() if f"{missing}:" not in r]
    if missing == "id":
        rows[0] = "  - " + rows[0].strip()
    text = HEAD + "\n".join(rows) + "\n"
    path, text = write(tmp_path, text)
    (p,) = problems(path)
    assert p.field == field
    assert p.line == 3                               # the case starts on line 3
    assert p.message == "required field is missing"


def test_bad_id(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE.replace("id: ok", "id: has space"))
    (p,) = problems(path)
    assert (p.field, p.line) == ("id", line(text, "id: has space"))


def test_two_errors_in_one_case_give_two_problems(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    strid: 2\n    groups: 0\n")
    probs = problems(path)
    assert [(p.line, p.field) for p in probs] == [(line(text, "strid"), "strid"), (line(text, "groups"), "groups")]


def test_errors_in_several_cases_are_all_reported(tmp_path):
    path, text = write(tmp_path, HEAD + """
          - id: a
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel_size: 0
          - id: fine
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel_size: 3
          - id: c
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel_size: 3
            layout: NWHC
    """)
    probs = problems(path)
    assert [(p.line, p.field) for p in probs] == [(line(text, "kernel_size: 0"), "kernel_size"),
                                                  (line(text, "layout: NWHC"), "layout")]
    assert all(p.file == str(path) for p in probs)


def test_problem_in_defaults_points_at_defaults_once(tmp_path):
    path, text = write(tmp_path, "op: conv2d_transpose\ndefaults:\n  dtype: float8\ncases:\n"
                       + VALID_CASE.lstrip("\n") + VALID_CASE.replace("id: ok", "id: ok2"))
    (p,) = problems(path)     # the same problem for two cases is listed once
    assert (p.line, p.field) == (line(text, "dtype: float8"), "dtype")


def test_invalid_matrix_value_points_at_the_item(tmp_path):
    path, text = write(tmp_path, HEAD + """
          - id: m
            input: [1, 2, 3, 3]
            out_channels: 2
            kernel_size: 3
            matrix:
              stride:
                - 1
                - 0
                - -2
    """)
    probs = problems(path)
    assert [(p.line, p.field) for p in probs] == [(line(text, "- 0"), "stride"), (line(text, "- -2"), "stride")]


@pytest.mark.parametrize("matrix, field", [("matrix: [1, 2]", "matrix"), ("matrix: {stride: []}", "matrix.stride"),
                                           ("matrix: {stride: 2}", "matrix.stride"),
                                           ("matrix: {id: [a, b]}", "matrix.id")])
def test_malformed_matrix(tmp_path, matrix, field):
    path, text = write(tmp_path, HEAD + VALID_CASE + f"    {matrix}\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "matrix:"), field)


def test_matrix_size_limit(tmp_path):
    n = 101
    assert n * n > MAX_MATRIX_POINTS
    values = "[" + ", ".join(str(i) for i in range(1, n + 1)) + "]"
    path, text = write(tmp_path, HEAD + VALID_CASE + f"    matrix:\n      stride: {values}\n      groups: {values}\n")
    (p,) = problems(path)
    assert p.field == "matrix" and f"expands to {n * n} cases" in p.message


# --------------------------------------------------------------------------- semantic level


def test_expect_shape_differs_from_canonical(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    expect:\n      shape: [1, 2, 9, 9]\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "shape: [1, 2, 9, 9]"), "expect.shape")
    assert "[1, 2, 9, 9] differs from the canonical output shape [1, 2, 5, 5]" in p.message


def test_invalid_call_without_expect_error(tmp_path):
    path, text = write(tmp_path, HEAD + """
          - id: a
            input: [1, 3, 4, 4]
            out_channels: 4
            kernel_size: 3
            groups: 2
    """)
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "groups: 2"), "groups")
    assert "input channels 3 are not divisible by groups 2" in p.message
    assert "expect: {error: true}" in p.message


def test_invalid_output_padding_points_at_output_padding(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    stride: 2\n    output_padding: 2\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "output_padding: 2"), "output_padding")
    assert "max(stride, dilation) = 2" in p.message


def test_unreachable_output_shape_points_at_output_shape(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    padding: same\n    output_shape: [4, 3]\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "output_shape:"), "output_shape")
    assert "'same'" in p.message


def test_expect_error_on_a_valid_call(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    expect: {error: true}\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "expect:"), "expect.error")


# --------------------------------------------------------------------------- suites


def test_duplicate_id_across_two_files(tmp_path):
    first, first_text = write(tmp_path, HEAD + VALID_CASE, "a/first.yaml")
    second, second_text = write(tmp_path, HEAD + VALID_CASE.replace("id: ok", "id: other") + VALID_CASE,
                                "b/second.yaml")
    with pytest.raises(ProblemsError) as info:
        load_suite([str(tmp_path)])
    (p,) = info.value.problems
    assert p.file == str(second)
    assert p.line == line(second_text, "id: ok")
    assert p.field == "id"
    assert p.message == f"duplicate case id 'ok' (first at {first}:{line(first_text, 'id: ok')})"


def test_duplicate_id_from_matrix_and_plain_case(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    matrix: {stride: [2]}\n"
                       + VALID_CASE.replace("id: ok", "id: ok[stride=2]"))
    with pytest.raises(ProblemsError) as info:
        load_suite([str(path)])
    (p,) = info.value.problems
    assert (p.field, p.line) == ("id", line(text, "id: ok[stride=2]"))


def test_suite_collects_problems_of_every_file(tmp_path):
    bad1, t1 = write(tmp_path, HEAD + VALID_CASE + "    stride: 0\n", "one.yaml")
    bad2, t2 = write(tmp_path, "op: nope\ncases: []\n", "two.yml")
    good, _ = write(tmp_path, HEAD + VALID_CASE.replace("id: ok", "id: good"), "three.yaml")
    write(tmp_path, "ignored: true\n", "known_divergences.yaml")
    with pytest.raises(ProblemsError) as info:
        load_suite([str(tmp_path)])
    got = {(p.file, p.line, p.field) for p in info.value.problems}
    assert got == {(str(bad1), line(t1, "stride: 0"), "stride"), (str(bad2), 1, "op")}


def test_suite_loads_good_files_in_sorted_order(tmp_path):
    write(tmp_path, HEAD + VALID_CASE.replace("id: ok", "id: b"), "b.yaml")
    write(tmp_path, HEAD + VALID_CASE.replace("id: ok", "id: a"), "sub/a.yaml")
    write(tmp_path, HEAD + VALID_CASE.replace("id: ok", "id: c"), "c.yml")
    cases = load_suite([str(tmp_path)])
    # files sorted by path: b.yaml, c.yml, sub/a.yaml
    assert [c.id for c in cases] == ["b", "c", "a"]


def test_suite_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(ProblemsError) as info:
        load_suite([str(tmp_path / "nope.yaml")])
    (p,) = info.value.problems
    assert (p.file, p.line, p.field) == (str(tmp_path / "nope.yaml"), 0, "path")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProblemsError) as info:
        load_suite([str(empty)])
    (p,) = info.value.problems
    assert p.field == "path" and "no case files" in p.message


def test_problem_str_format():
    assert str(Problem("cases/x.yaml", 7, "stride", "must be ≥ 1, got 0")) == "cases/x.yaml:7: stride: must be ≥ 1, got 0"


def test_unknown_case_key_with_block_value_points_at_key(tmp_path):
    path, text = write(tmp_path, HEAD + VALID_CASE + "    matrx:\n      stride: [1, 2]\n")
    (p,) = problems(path)
    assert (p.line, p.field) == (line(text, "matrx:"), "matrx")
    assert "did you mean 'matrix'" in p.message


def test_problem_str_shows_control_characters_as_escapes():
    assert str(Problem("f.yaml", 3, "\x1b[31mkey", "bad\nvalue \x9b")) == "f.yaml:3: \\x1b[31mkey: bad\\nvalue \\x9b"


def test_nesting_is_bounded_while_composing_with_the_line():
    from harness.yamlsrc import MAX_DEPTH
    assert load_yaml("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n", "f").value["a"] is not None
    with pytest.raises(ProblemsError) as info:
        load_yaml("a: 1\nb: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", "f")
    (p,) = info.value.problems
    assert (p.line, p.field) == (2, "yaml") and f"deeper than {MAX_DEPTH}" in p.message


def test_matrix_ids_follow_the_id_rules(tmp_path):
    from harness.cases import ID_PATTERN
    path, text = write(tmp_path, HEAD + VALID_CASE + "    matrix:\n      stride: [1, [1, 2]]\n"
                       '      description: [plain, "two words", "a\\u0085"]\n')
    found = problems(path)
    assert [(p.line, p.field) for p in found] == [(line(text, "description:"), "matrix.description[1]"),
                                                 (line(text, "description:"), "matrix.description[2]")]
    assert all("cannot be part of a case id" in p.message for p in found)
    path, _ = write(tmp_path, HEAD + VALID_CASE + "    matrix:\n      stride: [1, [1, 2]]\n"
                    "      description: [plain, a.b]\n", "ok.yaml")
    ids = [c.id for c in load_file(path)]
    assert ids[-1] == "ok[stride=1x2,description=a.b]"
    assert all(re.match(ID_PATTERN, i) for i in ids)
