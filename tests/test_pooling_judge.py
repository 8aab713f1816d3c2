"""Tightness of the pooling operators' error bounds, through the real runner path (``prepare``) and judge.

A correct answer in the case dtype passes; the plausible bugs of a pooling
implementation fail: a window shifted by one pixel, the wrong
``count_include_pad``, the wrong ``ceil_mode`` (another window count, or the
overhang counted), and for max, whose bound is 0, one element changed by one
unit in the last place or −∞ where the oracle has a value.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from helpers import write

from harness import ops
from harness.backends.base import Outcome
from harness.cases import load_file
from harness.compare import judge
from harness.data import round_to_dtype
from harness.runner import prepare


def _case(tmp_path, op: str, **fields):
    text = yaml.safe_dump({"op": op, "cases": [{"id": "t", "data": {"x": "normal", "seed": 5}, **fields}]})
    (case,) = load_file(write(tmp_path / "case.yaml", text))
    return case


def _verdict(call, ref, output, dtype):
    return judge(Outcome("ok", output=output), ref, expects_error=False, dtype=dtype).verdict


def _answer(call, dtype, **changed):
    """The oracle's answer for the call with some parameters changed, rounded to the case dtype."""
    spec = ops.get(call.op)
    params = {**call.params, **changed}
    return round_to_dtype(spec.oracle(params, call.arrays), dtype)


AVG = dict(input=[2, 3, 9, 10], kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_avg_bound_passes_the_right_answer_and_catches_the_usual_bugs(tmp_path, dtype):
    call, ref = prepare(_case(tmp_path, "avg_pool2d", dtype=dtype, **AVG))
    assert _verdict(call, ref, _answer(call, dtype), dtype) == "pass"
    wrong_count = _answer(call, dtype, count_include_pad=True)
    assert _verdict(call, ref, wrong_count, dtype) == "value_mismatch"
    assert _verdict(call, ref, _answer(call, dtype, ceil_mode=False), dtype) == "shape_mismatch"
    shifted = ops.get("avg_pool2d").oracle(call.params, {"x": np.roll(call.arrays["x"], 1, axis=3)})
    assert _verdict(call, ref, round_to_dtype(shifted, dtype), dtype) == "value_mismatch"


def test_avg_wrong_ceil_mode_with_the_same_window_count_is_caught(tmp_path):
    # 8 rows, k 3, s 2, pad 1: floor gives 4 windows, ceil 5 whose last overhangs the padding by one row.
    # Counting that row (a ceil_mode implemented as extra bottom padding) changes only the last window's divisor.
    fields = AVG | {"input": [1, 2, 8, 8], "count_include_pad": True}
    call, ref = prepare(_case(tmp_path, "avg_pool2d", dtype="float16", **fields))
    padded = _answer(call, "float16", padding=[1, 2, 1, 2], ceil_mode=False)
    assert padded.shape == ref.output.shape
    assert _verdict(call, ref, padded, "float16") == "value_mismatch"


MAX = dict(input=[2, 3, 9, 10], kernel_size=3, stride=2, padding=1, dilation=[1, 2], ceil_mode=True)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_max_bound_is_zero_and_catches_one_changed_element(tmp_path, dtype):
    call, ref = prepare(_case(tmp_path, "max_pool2d", dtype=dtype, **MAX))
    right = _answer(call, dtype)
    assert _verdict(call, ref, right, dtype) == "pass"
    changed = right.copy()
    changed[1, 2, 3, 1] = np.nextafter(changed[1, 2, 3, 1], np.inf)      # below any dtype's rounding
    assert _verdict(call, ref, changed, dtype) == "value_mismatch"
    assert _verdict(call, ref, _answer(call, dtype, ceil_mode=False), dtype) == "shape_mismatch"
    shifted = ops.get("max_pool2d").oracle(call.params, {"x": np.roll(call.arrays["x"], 1, axis=2)})
    assert _verdict(call, ref, round_to_dtype(shifted, dtype), dtype) == "value_mismatch"


def test_max_minus_infinity_must_sit_where_the_oracle_has_it(tmp_path):
    # k 2, dilation 3, pad 1 on 2x2: the first window's taps land on padding only (−∞).
    call, ref = prepare(_case(tmp_path, "max_pool2d", dtype="float32", input=[1, 1, 2, 2], kernel_size=2,
                              stride=1, padding=1, dilation=3))
    assert np.isneginf(ref.output).any()
    assert _verdict(call, ref, _answer(call, "float32"), "float32") == "pass"
    finite = np.where(np.isneginf(ref.output), np.float64(np.finfo(np.float32).min), ref.output)
    assert _verdict(call, ref, finite, "float32") == "value_mismatch"
