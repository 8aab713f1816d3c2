"""avg_pool2d and max_pool2d: the oracles' hand cases, the semantics' rules and rejections, and the case files.

Every expected number below is derived by hand in the comment next to it from
the definitions (Note [Pooling windows], Note [Average pooling], Note [Max
pooling]); none is computed with the code under test. Agreement with PyTorch
and TensorFlow lives in ``test_pooling_frameworks.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harness import cases
from harness.ops.avg_pool2d import oracle as avg_oracle
from harness.ops.avg_pool2d import semantics as avg
from harness.ops.max_pool2d import oracle as max_oracle
from harness.ops.max_pool2d import semantics as mx

ROOT = Path(__file__).resolve().parents[1]
ARANGE_4 = np.arange(16.0).reshape(1, 1, 4, 4)
ARANGE_5 = np.arange(25.0).reshape(1, 1, 5, 5)


def avg_ref(x, **params):
    canonical = avg.Params(input=list(x.shape), **params).model_dump()
    return avg_oracle.reference(canonical, {"x": x})


def max_ref(x, **params):
    canonical = mx.Params(input=list(x.shape), **params).model_dump()
    return max_oracle.reference(canonical, {"x": x})


# --- oracle hand cases -------------------------------------------------------------------------------------------

def test_avg_non_overlapping_windows_stride_defaults_to_kernel():
    # 4×4 arange, k 2, no stride given (= 2): means of {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}.
    np.testing.assert_array_equal(avg_ref(ARANGE_4, kernel_size=2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])


@pytest.mark.parametrize("include, expected", [
    # x = [[1,2,3],[4,5,6],[7,8,9]], k 2, s 2, pad 1: P = 5, two windows per axis over rows {−1,0} and {1,2}.
    # [0,0] holds {1}: 1/1 or 1/4. [0,1] {2,3}: 5/2 or 5/4. [1,0] {4,7}: 11/2 or 11/4. [1,1] {5,6,8,9} = 28/4.
    (False, [[1.0, 2.5], [5.5, 7.0]]),
    (True, [[0.25, 1.25], [2.75, 7.0]]),
])
def test_avg_count_include_pad(include, expected):
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    out = avg_ref(x, kernel_size=2, padding=1, count_include_pad=include)
    np.testing.assert_array_equal(out[0, 0], expected)


@pytest.mark.parametrize("include, expected", [
    # 5×5 arange, k 2, s 2, SAME: ceil(5/2) = 3, pad_needed = 2·2 + 2 − 5 = 1, all of it at the bottom/right.
    # Excluded (TensorFlow): [0,2] = {4, 9} / 2 = 6.5; [2,0] = {20, 21} / 2 = 20.5; [2,2] = {24} / 1.
    (False, [[3.0, 5.0, 6.5], [13.0, 15.0, 16.5], [20.5, 22.5, 24.0]]),
    # Included: the same sums over 4: 13/4, 33/4 (= {14,19}), 41/4, 24/4.
    (True, [[3.0, 5.0, 3.25], [13.0, 15.0, 8.25], [10.25, 11.25, 6.0]]),
])
def test_avg_same_odd_padding_goes_bottom_right(include, expected):
    out = avg_ref(ARANGE_5, kernel_size=2, padding="same", count_include_pad=include)
    np.testing.assert_array_equal(out[0, 0], expected)


@pytest.mark.parametrize("include, expected", [
    # 5×5 arange, k 2, s 2, same_lower (ONNX SAME_LOWER): pad_needed 1, all of it at the top/left; windows
    # rows −1..0, 1..2, 3..4. Excluded: [0,0] = {0}; [0,1] = {1,2}/2; [1,0] = {5,10}/2; [1,1] = {6,7,11,12}/4 = 9.
    (False, [[0.0, 1.5, 3.5], [7.5, 9.0, 11.0], [17.5, 19.0, 21.0]]),
    # Included: every window counts 4: [0,0] = 0/4, [0,1] = 3/4, [1,0] = 15/4.
    (True, [[0.0, 0.75, 1.75], [3.75, 9.0, 11.0], [8.75, 19.0, 21.0]]),
])
def test_avg_same_lower_odd_padding_goes_top_left(include, expected):
    out = avg_ref(ARANGE_5, kernel_size=2, padding="same_lower", count_include_pad=include)
    np.testing.assert_array_equal(out[0, 0], expected)
    r = avg.resolve(avg.Params(input=[1, 1, 5, 5], kernel_size=2, stride=2, padding="same_lower"))
    assert r.pads == (1, 0, 1, 0) and r.out_hw == (3, 3)


def test_max_same_lower_pads_with_minus_infinity_at_the_top_left():
    # 5×5 arange, k 2, s 2: windows rows −1..0, 1..2, 3..4: the max is the bottom-right element of each.
    out = max_ref(ARANGE_5, kernel_size=2, padding="same_lower")[0, 0]
    np.testing.assert_array_equal(out, [[0, 2, 4], [10, 12, 14], [20, 22, 24]])


def test_avg_ceil_mode_adds_partial_windows():
    # 4×4 arange, k 3, s 2: floor mode fits 1 window (mean of rows/cols 0..2 = 45/9 = 5); ceil mode adds a
    # window starting at 2 that runs past the input: [0,1] = {2,3,6,7,10,11}/6 = 6.5, [1,0] = {8,9,10,12,13,14}/6
    # = 11, [1,1] = {10,11,14,15}/4 = 12.5. No padding, so counting it changes nothing.
    np.testing.assert_array_equal(avg_ref(ARANGE_4, kernel_size=3, stride=2)[0, 0], [[5.0]])
    for include in (False, True):
        out = avg_ref(ARANGE_4, kernel_size=3, stride=2, ceil_mode=True, count_include_pad=include)
        np.testing.assert_array_equal(out[0, 0], [[5.0, 6.5], [11.0, 12.5]])


def test_avg_ceil_mode_overhang_past_padding_is_not_counted():
    # Column x = [1,2,3,4], k [3,1], s [2,1], pad 1 top/bottom: P = 6, ceil mode: 3 windows over rows
    # {−1,0,1}, {1,2,3}, {3,4,5}; row 4 is padding, row 5 past it. Excluded: 3/2, 9/3, 4/1. Included: 3/3,
    # 9/3, and the last counts rows 3 and 4 only: 4/2.
    x = np.arange(1.0, 5.0).reshape(1, 1, 4, 1)
    params = dict(kernel_size=[3, 1], stride=[2, 1], padding=[1, 1, 0, 0], ceil_mode=True)
    np.testing.assert_array_equal(avg_ref(x, **params)[0, 0, :, 0], [1.5, 3.0, 4.0])
    np.testing.assert_array_equal(avg_ref(x, count_include_pad=True, **params)[0, 0, :, 0], [1.0, 3.0, 2.0])


def test_max_dilation_samples_every_dth_element():
    # 5×5, k 2, d 2, s 1: K = 3, 3×3 outputs; out[i,j] = max of x at (i,j), (i,j+2), (i+2,j), (i+2,j+2).
    # Increasing data: the far tap (5(i+2) + j + 2); decreasing data: the first tap −(5i + j).
    np.testing.assert_array_equal(max_ref(ARANGE_5, kernel_size=2, stride=1, dilation=2)[0, 0],
                                  [[12, 13, 14], [17, 18, 19], [22, 23, 24]])
    np.testing.assert_array_equal(max_ref(-ARANGE_5, kernel_size=2, stride=1, dilation=2)[0, 0],
                                  [[0, -1, -2], [-5, -6, -7], [-10, -11, -12]])


def test_max_padding_is_minus_infinity():
    # x = −[[1,2,3],[4,5,6],[7,8,9]], k 3, s 1, pad 1: the corner window holds {−1,−2,−4,−5} and padding;
    # padding must not win, so −1 (a zero padding would give 0). Centre: −1; edges likewise their best value.
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(max_ref(x, kernel_size=3, stride=1, padding=1)[0, 0],
                                  [[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]])


def test_max_window_of_padding_only_is_minus_infinity():
    # 2×2, k 2, d 3, pad 1: K = 4 = P, one window with taps at rows −1 and 2: both padding.
    out = max_ref(np.arange(4.0).reshape(1, 1, 2, 2), kernel_size=2, stride=1, padding=1, dilation=3)
    assert out.shape == (1, 1, 1, 1) and out[0, 0, 0, 0] == -np.inf


def test_nhwc_is_the_nchw_result_transposed():
    # Channel 1 = channel 0 + 100: both channels pool the same windows (k 2 means as in the first test).
    nchw = np.concatenate([ARANGE_4, ARANGE_4 + 100], axis=1)
    nhwc = nchw.transpose(0, 2, 3, 1)
    out = avg_oracle.reference(avg.Params(input=[1, 4, 4, 2], layout="NHWC", kernel_size=2).model_dump(),
                               {"x": nchw})
    assert out.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(out[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(out[0, :, :, 1], [[102.5, 104.5], [110.5, 112.5]])
    m = max_oracle.reference(mx.Params(input=list(nhwc.shape), layout="NHWC", kernel_size=2).model_dump(),
                             {"x": nchw})
    np.testing.assert_array_equal(m[0, :, :, 1], [[105, 107], [113, 115]])


def test_magnitudes():
    # avg: B is the average of |x| with the same divisor; max: 0 (exact).
    x = np.array([[[[-1.0, 3.0], [-5.0, 1.0]]]])
    params = avg.Params(input=[1, 1, 2, 2], kernel_size=2).model_dump()
    assert avg_oracle.reference(params, {"x": x})[0, 0, 0, 0] == -0.5
    assert avg_oracle.magnitude(params, {"x": x})[0, 0, 0, 0] == 2.5
    mparams = mx.Params(input=[1, 2, 2, 1], kernel_size=1, layout="NHWC").model_dump()   # x is NCHW (1,1,2,2)
    assert max_oracle.magnitude(mparams, {"x": x}).shape == (1, 2, 2, 1)
    assert not max_oracle.magnitude(mparams, {"x": x}).any()


def test_oracles_import_nothing_from_the_harness():
    for module in (avg_oracle, max_oracle):
        tree = ast.parse(Path(module.__file__).read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith("harness")], (module.__name__, names)


# --- semantics -------------------------------------------------------------------------------------------------

def test_canonical_defaults_are_explicit():
    a = avg.Params(input=[1, 1, 6, 6], kernel_size=[3, 2])
    assert (a.stride, a.padding, a.ceil_mode, a.count_include_pad) == ([3, 2], [0, 0, 0, 0], False, False)
    assert avg.resolve(a).count_rule == "input"
    m = mx.Params(input=[1, 1, 6, 6], kernel_size=3, stride=1)
    assert (m.stride, m.dilation, m.ceil_mode) == ([1, 1], [1, 1], False)
    assert mx.resolve(m).count_rule is None


@pytest.mark.parametrize("module, fields", [
    (avg, {"kernel_size": True}), (avg, {"kernel_size": 0}), (avg, {"stride": [1, 2, 3]}),
    (avg, {"padding": [1, 2]}), (avg, {"padding": -1}), (avg, {"padding": "SAME"}),
    (avg, {"dilation": 2}),                   # average pooling has no dilation
    (mx, {"count_include_pad": True}),        # max pooling has no count
    (mx, {"dilation": 0}), (avg, {"ceil_mode": 1}), (avg, {"input": [1, 0, 3, 3]}),
])
def test_params_reject(module, fields):
    with pytest.raises(ValidationError):
        module.Params(**{"input": [1, 1, 4, 4], "kernel_size": 2, **fields})


@pytest.mark.parametrize("h, k, s, pads, out", [
    (5, 4, 1, (1, 2), 5),    # pad_needed 3: top 1, bottom 2
    (5, 2, 2, (0, 1), 3),    # pad_needed 1, all at the bottom
    (6, 3, 2, (0, 1), 3),    # ceil(6/2) = 3: (3−1)·2 + 3 − 6 = 1
    (5, 1, 3, (0, 0), 2),    # K < s: no padding, windows at 0 and 3
])
def test_same_padding_tensorflow_rule(h, k, s, pads, out):
    for ceil_mode in (False, True):      # windows fit exactly, so ceil_mode changes nothing
        r = avg.resolve(avg.Params(input=[1, 1, h, h], kernel_size=k, stride=s, padding="same",
                                   ceil_mode=ceil_mode))
        assert (r.pads[:2], r.out_hw[0]) == (pads, out)


@pytest.mark.parametrize("params, out", [
    (dict(input=[1, 1, 5, 5], kernel_size=2, stride=2, padding=1, ceil_mode=True), 3),  # start 6 ≥ 5+1: dropped
    (dict(input=[1, 1, 4, 4], kernel_size=3, stride=2, ceil_mode=True), 2),              # partial window kept
    (dict(input=[1, 1, 3, 3], kernel_size=4, stride=2, ceil_mode=True), 1),              # K − P = 1 < s: one
    (dict(input=[1, 1, 7, 7], kernel_size=3, stride=3, padding="valid"), 2),             # floor(4/3) + 1
    # k 1, pad 2 on both sides of 1 row: floor mode has 5 windows, the last two of bottom padding only; ceil_mode
    # adds none, so drops none (PyTorch, which forbids this padding, would drop the last one: Note [Pooling windows])
    (dict(input=[1, 1, 1, 1], kernel_size=1, padding=2, ceil_mode=True, count_include_pad=True), 5),
])
def test_window_count(params, out):
    assert avg.resolve(avg.Params(**params)).out_hw == (out, out)


@pytest.mark.parametrize("module, params, field, needle", [
    (avg, dict(input=[1, 1, 3, 3], kernel_size=4), "kernel_size", "no window fits along height"),
    (mx, dict(input=[1, 1, 3, 9], kernel_size=[3, 5], dilation=[1, 3]), "kernel_size", "along width"),
    (avg, dict(input=[1, 1, 2, 2], kernel_size=5, padding=1), "padding", "padded by 1+1"),
    (avg, dict(input=[1, 1, 3, 3], kernel_size=5, stride=2, ceil_mode=True), "kernel_size", "even with ceil_mode"),
    (avg, dict(input=[1, 1, 3, 3], kernel_size=2, stride=1, padding=[2, 0, 0, 0]), "padding", "padding only"),
])
def test_resolve_rejects(module, params, field, needle):
    with pytest.raises(module.InvalidCall) as info:
        module.resolve(module.Params(**params))
    assert info.value.field == field and needle in info.value.reason


def test_padding_only_window_is_valid_when_counted_or_for_max():
    # pad [2,0,0,0], k 2, s 1 on 3 rows: window 0 covers rows −2, −1: counted, its average is 0/2.
    params = dict(input=[1, 1, 3, 3], kernel_size=2, stride=1, padding=[2, 0, 0, 0])
    out = avg_ref(np.ones((1, 1, 3, 3)), count_include_pad=True, **{k: v for k, v in params.items() if k != "input"})
    np.testing.assert_array_equal(out[0, 0, :, 0], [0.0, 0.5, 1.0, 1.0])
    assert mx.derived(mx.Params(**params).model_dump(), {})["window_in_padding_only"]
    assert not avg.derived(avg.Params(**params).model_dump(), {})["valid_call"]


def test_derived_values():
    # 5×5, k 3, s 2, pad [1,0,1,0]: P = 6, floor(3/2)+1 = 2; ceil floor(4/2)+1 = 3, start 4 < 5+1: kept, and it
    # ends at padded row 7 > P: past the (absent) bottom padding.
    d = avg.derived(avg.Params(input=[1, 1, 5, 5], kernel_size=3, stride=2, padding=[1, 0, 1, 0],
                               ceil_mode=True).model_dump(), {})
    assert d["out_size"] == [3, 3] and d["floor_out_size"] == [2, 2] and d["ceil_mode_adds_window"]
    assert d["window_past_padding"] and d["asymmetric_pad"] and d["count_include_pad_matters"]
    assert not d["pad_over_half_kernel"] and d["valid_call"] and d["overlapping"]
    m = mx.derived(mx.Params(input=[1, 1, 9, 9], kernel_size=2, padding=[2, 2, 0, 0]).model_dump(), {})
    assert m["pad_over_half_kernel"] and m["pad_not_below_kernel"] and m["pad_sum_over_kernel"]
    assert m["window_in_padding_only"] and not m["dilated"] and m["stride_is_kernel"]
    assert set(m) == set(mx.DERIVED) and set(d) == set(avg.DERIVED)


_shapes = st.fixed_dictionaries({
    "input": st.tuples(st.integers(0, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)).map(list),
    "layout": st.sampled_from(["NCHW", "NHWC"]),
    "kernel_size": st.tuples(st.integers(1, 4), st.integers(1, 4)).map(list),
    "stride": st.tuples(st.integers(1, 4), st.integers(1, 4)).map(list),
    "padding": st.one_of(st.sampled_from(["same", "same_lower", "valid"]),
                         st.lists(st.integers(0, 5), min_size=4, max_size=4)),
    "ceil_mode": st.booleans(),
    "dilation": st.tuples(st.integers(1, 3), st.integers(1, 3)).map(list),
    "count_include_pad": st.booleans(),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_shapes)
def test_semantics_and_oracles_agree_on_shapes(fields):
    """The closed-form rule (semantics) and the window-by-window count (oracles) give the same output."""
    rng = np.random.default_rng(0)
    n, a, b, c = fields["input"]
    x = rng.standard_normal((n, c, a, b) if fields["layout"] == "NHWC" else (n, a, b, c))
    for module, oracle, drop in ((avg, avg_oracle, "dilation"), (mx, max_oracle, "count_include_pad")):
        params = module.Params(**{k: v for k, v in fields.items() if k != drop})
        try:
            resolved = module.resolve(params)
        except module.InvalidCall:
            continue
        out = oracle.reference(params.model_dump(), {"x": x})
        assert out.shape == resolved.output_shape
        assert oracle.magnitude(params.model_dump(), {"x": x}).shape == out.shape
        assert np.isfinite(out).all() or module is mx     # avg: every accepted window has a divisor


def test_footprint_grows_with_the_input():
    small = avg.footprint(avg.Params(input=[1, 2, 8, 8], kernel_size=2))
    large = avg.footprint(avg.Params(input=[1, 2, 64, 64], kernel_size=2))
    assert all(s > 0 for s in small) and all(l > 50 * s for s, l in zip(small, large))
    # invalid calls too (the memory guard sees every case)
    assert mx.footprint(mx.Params(input=[1, 1, 2, 2], kernel_size=9), "float16", 4)[0] > 0


# --- case files --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["avg_pool2d", "max_pool2d"])
def test_case_files_load_and_their_oracle_shapes_match(folder):
    module, oracle = (avg, avg_oracle) if folder == "avg_pool2d" else (mx, max_oracle)
    files = sorted((ROOT / "cases" / folder).glob("*.yaml"))
    assert len(files) >= 7
    loaded, errors = [], 0
    for path in files:
        assert path.read_text(encoding="utf-8").startswith("#"), f"{path.name}: head it with a comment"
        loaded += cases.load_file(path)
    assert len({c.id for c in loaded}) == len(loaded)
    for case in loaded:
        assert case.op == module.NAME
        if case.resolved is None:
            errors += 1
            continue
        x = np.ones(module.input_shapes(case.params)["x"])
        assert oracle.reference(case.canonical_params(), {"x": x}).shape == case.expected_shape, case.id
    assert errors >= 3
