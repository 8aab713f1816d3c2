"""The default suite (``cases/``) itself: it loads, it is organised by concern, each case's oracle
agrees with the semantics on the shape, the generated pairwise file is current, the error inputs
cover the issue's list, and the known-divergence registry still names real cases.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness import ops
from harness.cases import load_suite
from harness.data import make_arrays
from harness.divergences import _glob
from harness.ops.conv2d_transpose import semantics
from harness.pairwise import for_op

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"
FOLDER = CASES / "conv2d_transpose"
CONCERNS = {"mapping_page.yaml", "padding.yaml", "strides_kernels.yaml", "dilation_groups.yaml",
            "output_padding.yaml", "layouts.yaml", "dtypes.yaml", "edge_shapes.yaml", "errors.yaml",
            "pairwise.yaml"}


@pytest.fixture(scope="module")
def suite():
    return load_suite([str(CASES)])


@pytest.fixture(scope="module")
def conv(suite):
    """The conv2d_transpose cases (the checks below that name its parameters)."""
    return [c for c in suite if c.op == "conv2d_transpose"]


def test_every_case_in_the_suite_validates_and_ids_are_unique(suite):
    ids = [c.id for c in suite]
    assert len(ids) == len(set(ids))
    assert len(suite) > 300


def test_files_are_organised_by_concern_and_headed_by_a_comment():
    files = {p.name for p in FOLDER.glob("*.yaml")}
    assert CONCERNS <= files, CONCERNS - files
    for path in FOLDER.glob("*.yaml"):
        head = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            head.append(line)
        assert len(head) >= 3, f"{path.name}: start with a comment saying what it covers and why"
        assert "why" in " ".join(head).lower(), f"{path.name}: the header comment should say why"


def test_oracle_shape_equals_the_semantics_shape_for_every_case(suite):
    for case in suite:
        if case.resolved is None:
            continue
        op = ops.get(case.op)
        arrays = make_arrays(op.shapes(case.params), case.common.data.model_dump(), "float64", op.operands)
        out = op.oracle(case.canonical_params(), arrays)
        assert out.shape == case.expected_shape == case.resolved.output_shape, case.id
        # The one non-finite value a case may hold: a max over padding only is −∞ (Note [Max pooling]).
        padding_only = op.derived(case.canonical_params(), {}).get("window_in_padding_only", False)
        assert np.isfinite(out).all() or (padding_only and np.isfinite(out[~np.isneginf(out)]).all()), case.id


@pytest.mark.parametrize("op", list(ops.OPS))
def test_pairwise_file_is_what_the_generator_gives(op):
    gen = for_op(op)
    text = (ROOT / ops.get(op).coverage.path).read_text(encoding="utf-8")
    assert text == gen.render(gen.generate()), (
        f"{ops.get(op).coverage.path} is stale: python -m harness.pairwise {op} > {ops.get(op).coverage.path}")


def test_error_inputs_cover_every_kind_the_issue_lists(suite, conv):
    assert all(c.file.endswith("errors.yaml") for c in suite if c.expects_error)
    errors = [c for c in conv if c.expects_error]   # conv2d: tests/test_conv2d_op.py; pooling: test_pooling_ops.py
    assert errors
    fields = {}
    for case in errors:
        with pytest.raises(semantics.InvalidCall) as info:
            semantics.resolve(case.params)
        fields.setdefault(info.value.field, []).append(case.id)
    # unreachable output_shape, output_padding ≥ max(s, d), groups, non-positive output size
    assert {"output_shape", "output_padding", "groups", "padding"} <= set(fields), fields
    reasons = " ".join(c.invalid_reason for c in errors)
    assert "would be 0" in reasons and "would be -" in reasons            # zero and negative sizes
    assert "input channels" in reasons and "out_channels" in reasons       # both sides of groups
    for form in ("padding 'same'", "padding 'valid'", "padding 1+1"):      # every padding form of output_shape
        assert f"not reachable with {form}" in reasons, form


def test_part_of_the_suite_uses_impulses_and_asymmetric_kernels(conv):
    fills = {(c.common.data.x, c.common.data.w) for c in conv}
    assert ("impulse", "arange") in fills
    assert {"normal", "uniform", "ones", "arange", "impulse"} <= {x for x, _ in fills}
    impulse = [c for c in conv if c.common.data.x == "impulse" and not c.expects_error]
    assert len(impulse) > 50


def test_edge_shapes_are_in_the_suite(conv):
    valid = [c for c in conv if c.resolved is not None]
    r = [c.resolved for c in valid]
    assert any(x.batch == 0 for x in r), "empty batch"
    assert any(x.in_hw == (1, 1) for x in r), "1x1 input"
    assert any(x.out_hw == (1, 1) for x in r), "1x1 output"
    assert any(min(x.kernel[0] - x.in_hw[0], x.kernel[1] - x.in_hw[1]) > 0 for x in r), "kernel larger than input"
    assert any(x.kernel[0] < x.stride[0] and x.kernel[1] < x.stride[1] for x in r), "kernel smaller than stride"


def test_mapping_page_examples_keep_the_page_shapes(conv):
    shapes = {c.id: c.expected_shape for c in conv if c.file.endswith("mapping_page.yaml")}
    assert shapes["seed-1-explicit-zero-padding"] == (1, 64, 19, 53)
    assert shapes["seed-2-same"] == (1, 64, 16, 50)
    assert shapes["seed-3-valid-stride-3"] == (1, 64, 50, 152)


def test_every_registry_glob_names_a_case_of_the_suite(suite):
    """Keeps cases/known_divergences.yaml in sync with the case ids (a renamed case leaves a dead glob)."""
    ids = [c.id for c in suite]
    registry = yaml.safe_load((CASES / "known_divergences.yaml").read_text(encoding="utf-8"))
    for entry in registry["divergences"]:
        globs = [entry["cases"]] if isinstance(entry.get("cases", []), str) else entry.get("cases", [])
        for glob in globs:
            assert any(_glob(glob).match(i) for i in ids), f"{entry['id']}: {glob!r} matches no case"
        # F: the convolutions, PL: pooling; per surface: J jax.lax, TN torch.nn, MO mindspore.ops, OX ONNX Runtime
        found = re.match(r"^(F|PL|J|TN|MO|OX)(\d+)-", entry["id"])
        assert found, entry["id"]
        anchor = entry["link"].split("#")[1]
        assert entry["link"].startswith("docs/findings.md#") and anchor == "".join(found.groups()).lower()
        assert f"## {anchor.upper()}" in (ROOT / "docs" / "findings.md").read_text(encoding="utf-8")
