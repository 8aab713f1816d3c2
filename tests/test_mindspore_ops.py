"""The ``mindspore.ops`` adapter through real MindSpore, in its own environment (NumPy 1.26): the
primitives' native parameters, where they differ from the cells (F1, F2 do not apply), which pooling
form a call takes, and the findings MO1/MO4 from the primitives' own answers."""

from __future__ import annotations

import importlib.util

import pytest

from harness.cases import load_suite
from harness.runner import RunOptions, run
from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mindspore") is None, reason="mindspore not installed")

CASES = {
    # F1 for nn.Conv2dTranspose: 'valid' with k < s; the primitive takes the canonical size as input_sizes
    "conv2d_transpose": ["stride-kernel-padding[stride=2,kernel_size=1,padding=valid]",
                         # F2 for the cell: output_padding rows; the primitive computes them as the gradient
                         "output-padding[stride=2,output_padding=1,padding=1]",
                         "output-shape-same[output_shape=13x17]",
                         "output-padding-dilation-3[padding=0]"],                        # MO1
    "conv2d": ["conv2d-dilation[dilation=2x1,padding=2x1x0x3]"],
    "avg_pool2d": ["avg-count-pad-same[kernel_size=4x3,stride=2,count_include_pad=true]",
                   "avg-count-pad-same[kernel_size=4x3,stride=2,count_include_pad=false]"],
    "max_pool2d": ["max-dilation-window-of-padding-only"],                                 # MO4
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cases = [c for op, ids in CASES.items() for c in load_suite([str(ROOT / "cases" / op)]) if c.id in ids]
    assert len(cases) == sum(map(len, CASES.values()))
    out = run(cases, RunOptions(backends=["mindspore.ops", "mindspore.nn"], out=tmp_path_factory.mktemp("ms"),
                                jobs=1))   # the empty default registry: every verdict is the framework's own
    found = {(r["backend"], r["case"]): r for r in out.results}
    if any(r["verdict"] == "skipped" for r in found.values()):
        pytest.skip("the mindspore environment could not be built here: "
                    + next(r["reason"] for r in found.values() if r["verdict"] == "skipped"))
    return found


def test_conv2d_transpose_takes_the_output_size_as_input_sizes_and_passes_where_the_cell_diverges(results):
    for case in CASES["conv2d_transpose"][:2]:
        ops, nn = results["mindspore.ops", case], results["mindspore.nn", case]
        assert ops["verdict"] == "pass" and not ops["emulated"], ops["reason"]
        assert nn["verdict"] in ("shape_mismatch", "value_mismatch")   # F1, F2: the cell's own
    same = results["mindspore.ops", "output-shape-same[output_shape=13x17]"]
    assert same["verdict"] == "pass"
    assert same["native_call"].startswith("mindspore.ops.Conv2DTranspose(4, (4, 4), stride=(2, 2)")
    assert "pad_mode='same'" in same["native_call"] and same["native_call"].endswith("(x, weight, (2, 3, 13, 17))")


def test_mo1_input_sizes_past_the_stride_fail_in_onednn(results):
    r = results["mindspore.ops", "output-padding-dilation-3[padding=0]"]
    assert r["verdict"] == "unexpected_error" and "could not create a primitive descriptor" in r["reason"]


def test_conv2d_explicit_asymmetric_padding_is_native_pad(results):
    r = results["mindspore.ops", "conv2d-dilation[dilation=2x1,padding=2x1x0x3]"]
    assert r["verdict"] == "pass" and not r["emulated"]
    assert "pad_mode='pad', pad=(2, 1, 0, 3)" in r["native_call"]


def test_average_pooling_counts_the_padding_through_avg_pool2d_only(results):
    counted = results["mindspore.ops", "avg-count-pad-same[kernel_size=4x3,stride=2,count_include_pad=true]"]
    excluded = results["mindspore.ops", "avg-count-pad-same[kernel_size=4x3,stride=2,count_include_pad=false]"]
    assert counted["verdict"] == excluded["verdict"] == "pass"
    assert counted["native_call"].startswith("mindspore.ops.avg_pool2d(x,") and counted["emulated"]
    assert "count_include_pad=True" in counted["native_call"]
    assert excluded["native_call"] == ("mindspore.ops.AvgPool(kernel_size=(4, 3), strides=(2, 2), "
                                       "pad_mode='SAME')(x)") and not excluded["emulated"]
    assert results["mindspore.nn", counted["case"]]["verdict"] == "value_mismatch"   # PL2: the cell ignores it


def test_mo4_max_pool2d_pads_with_the_lowest_float(results):
    r = results["mindspore.ops", "max-dilation-window-of-padding-only"]
    assert r["verdict"] == "value_mismatch"
    assert float(r["metrics"]["worst_actual"]) == pytest.approx(-3.4028235e38, rel=1e-6)
