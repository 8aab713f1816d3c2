"""The float64 oracle ``harness.ops.conv2d_transpose.oracle.reference``.

Two kinds of evidence, neither borrowed from the code under test:

* small cases whose every output number is written out by hand;
* the adjoint identity ``<conv2d(y), x> = <y, conv2d_transpose(x)>`` against a
  direct conv2d written here with plain loops, over random shapes, strides,
  dilations, groups, crops, output_padding and every padding form (hypothesis).

Crops and output sizes in this file are derived here from DESIGN.md §2, not
taken from ``harness.ops`` or from the oracle's own helpers.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import run_tensorflow
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harness.ops.conv2d_transpose.semantics import Params, resolve
from harness.ops.conv2d_transpose.oracle import reference

ROOT = Path(__file__).resolve().parents[1]

X = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
W = np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(1, 1, 2, 2)

# stride 1: out[p, q] = sum over a+i = p, b+j = q of x[a, b] * w[i, j]
FULL_S1 = np.array([
    [1, 10 + 2, 20],
    [100 + 3, 1000 + 200 + 30 + 4, 2000 + 40],
    [300, 3000 + 400, 4000],
], dtype=float)

# stride 2: the four copies x[a, b] * w do not overlap: block (2a, 2b).
FULL_S2 = np.array([
    [1, 10, 2, 20],
    [100, 1000, 200, 2000],
    [3, 30, 4, 40],
    [300, 3000, 400, 4000],
], dtype=float)


def ref(params, x=X, w=W, b=None, dtype=np.float64):
    arrays = {"x": x, "w": w}
    if b is not None:
        arrays["b"] = b
    return reference(params, arrays, dtype=dtype)


# --------------------------------------------------------------------------- hand-computed


def test_stride_1_full_output():
    out = ref({"kernel_size": 2, "stride": 1, "padding": 0})
    assert out.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(out[0, 0], FULL_S1)


def test_stride_2_full_output():
    out = ref({"kernel_size": 2, "stride": 2, "padding": 0})
    assert out.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(out[0, 0], FULL_S2)


def test_rectangular_stride():
    # stride (1, 2): rows overlap as with stride 1, columns do not.
    # out[p, 2b + j] = sum_{a+i=p} x[a, b] w[i, j]
    out = ref({"stride": [1, 2], "padding": 0})
    expected = np.array([
        [1, 10, 2, 20],
        [100 + 3, 1000 + 30, 200 + 4, 2000 + 40],
        [300, 3000, 400, 4000],
    ], dtype=float)
    np.testing.assert_array_equal(out[0, 0], expected)


def test_dilation_2():
    # K = 3, F = 4: out[a + 2i, b + 2j] += x[a, b] w[i, j]
    out = ref({"stride": 1, "dilation": 2, "padding": 0})
    expected = np.array([
        [1, 2, 10, 20],
        [3, 4, 30, 40],
        [100, 200, 1000, 2000],
        [300, 400, 3000, 4000],
    ], dtype=float)
    np.testing.assert_array_equal(out[0, 0], expected)


def test_explicit_crop_top_bottom_left_right():
    # [top, bottom, left, right] = [1, 0, 0, 1]: rows 1..2, columns 0..1 of FULL_S1.
    out = ref({"stride": 1, "padding": [1, 0, 0, 1]})
    np.testing.assert_array_equal(out[0, 0], [[103, 1234], [300, 3400]])


def test_int_padding_crops_every_side():
    out = ref({"stride": 2, "padding": 1})
    np.testing.assert_array_equal(out[0, 0], [[1000, 200], [30, 4]])


def test_output_padding_past_full_output_is_zero():
    # stride 2, no crop, op 1: F = 4, H_out = 5; row and column 4 are past F.
    out = ref({"stride": 2, "padding": 0, "output_padding": 1})
    expected = np.zeros((5, 5))
    expected[:4, :4] = FULL_S2
    assert out.shape == (1, 1, 5, 5)
    np.testing.assert_array_equal(out[0, 0], expected)


def test_output_padding_takes_back_cropped_values():
    # crop 1 at bottom/right then op 1: H_out = 4 - 1 + 1 = 4, the values are those of full.
    out = ref({"stride": 2, "padding": [0, 1, 0, 1], "output_padding": 1})
    np.testing.assert_array_equal(out[0, 0], FULL_S2)
    out = ref({"stride": 2, "padding": [1, 1, 0, 1], "output_padding": [1, 0]})
    np.testing.assert_array_equal(out[0, 0], FULL_S2[1:4, 0:3])


def test_same_odd_padding_extra_row_at_bottom():
    # k=2, s=1, H=2: F = 3, H_out = 2, pad_needed 1 -> top 0, bottom 1.
    out = ref({"stride": 1, "padding": "same"})
    np.testing.assert_array_equal(out[0, 0], FULL_S1[:2, :2])


def test_same_stride_2_even_needed_no_crop():
    # k=2, s=2, H=2: F = 4, H_out = 4, needed 0.
    out = ref({"stride": 2, "padding": "same"})
    np.testing.assert_array_equal(out[0, 0], FULL_S2)


def test_same_3x3_kernel_stride_2_crop():
    # x = [[1, 2], [3, 4]], w = 3x3 of 1..9 row-major; k=3, s=2: F = 5, H_out = 4, needed 1 -> 0/1.
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    full = np.zeros((5, 5))
    for a in range(2):
        for b in range(2):
            full[2 * a:2 * a + 3, 2 * b:2 * b + 3] += X[0, 0, a, b] * w[0, 0]
    # written out: the overlapping middle row/column hold sums of two or four taps
    assert full[2, 2] == 1 * 9 + 2 * 7 + 3 * 3 + 4 * 1
    out = ref({"stride": 2, "padding": "same"}, w=w)
    np.testing.assert_array_equal(out[0, 0], full[:4, :4])
    np.testing.assert_array_equal(out[0, 0, 0], [1, 2, 3 + 2, 4])


def test_same_with_output_shape_moves_the_crop():
    # k=3, s=2, H=2: ceil(out/2) == 2 -> out in 3..4. out 3: needed 2 -> crop 1 at top.
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    out4 = ref({"stride": 2, "padding": "same"}, w=w)
    out3 = ref({"stride": 2, "padding": "same", "output_shape": [3, 3]}, w=w)
    full = np.zeros((5, 5))
    for a in range(2):
        for b in range(2):
            full[2 * a:2 * a + 3, 2 * b:2 * b + 3] += X[0, 0, a, b] * w[0, 0]
    np.testing.assert_array_equal(out3[0, 0], full[1:4, 1:4])
    np.testing.assert_array_equal(out4[0, 0], full[0:4, 0:4])


def test_valid_with_larger_output_shape_adds_zero_rows():
    out = ref({"stride": 2, "padding": "valid", "output_shape": [5, 4]})
    expected = np.zeros((5, 4))
    expected[:4] = FULL_S2
    np.testing.assert_array_equal(out[0, 0], expected)


def test_explicit_with_output_shape():
    # pads 1+1 on 4 -> 2, output_shape 3 -> op 1: rows 1..3 of full.
    out = ref({"stride": 2, "padding": 1, "output_shape": [3, 3]})
    np.testing.assert_array_equal(out[0, 0], FULL_S2[1:4, 1:4])


def test_bias_is_added_per_output_channel():
    x = np.ones((1, 1, 2, 2))
    w = np.stack([W[0, 0], -W[0, 0]]).reshape(1, 2, 2, 2)   # two output channels
    out = ref({"stride": 2, "padding": 0}, x=x, w=w, b=np.array([0.5, -2.0]))
    assert out.shape == (1, 2, 4, 4)
    tile = np.tile(W[0, 0], (2, 2))
    np.testing.assert_array_equal(out[0, 0], tile + 0.5)
    np.testing.assert_array_equal(out[0, 1], -tile - 2.0)


def test_bias_on_zero_rows_of_output_padding():
    out = ref({"stride": 2, "padding": 0, "output_padding": 1}, b=np.array([7.0]))
    assert out[0, 0, 4, 4] == 7.0 and out[0, 0, 4, 0] == 7.0
    np.testing.assert_array_equal(out[0, 0, :4, :4], FULL_S2 + 7.0)


def test_channels_sum_over_input_channels():
    # two input channels with 1x1 kernels: out[o] = sum_c x[c] w[c, o]
    x = np.stack([X[0, 0], 10 * X[0, 0]])[None]               # (1, 2, 2, 2)
    w = np.array([[2.0, 3.0], [5.0, 7.0]]).reshape(2, 2, 1, 1)  # (C_in, C_out, 1, 1)
    out = ref({"padding": 0}, x=x, w=w)
    np.testing.assert_array_equal(out[0, 0], (2 + 50) * X[0, 0])
    np.testing.assert_array_equal(out[0, 1], (3 + 70) * X[0, 0])


def test_groups_2_block_structure_by_hand():
    # groups=2, C_in = 2, C_out = 2: weight (2, 1, 1, 1); out[0] = 3·x[0], out[1] = 5·x[1].
    x = np.stack([np.ones((2, 2)), 2 * np.ones((2, 2))])[None]
    w = np.array([3.0, 5.0]).reshape(2, 1, 1, 1)
    out = ref({"groups": 2, "padding": 0}, x=x, w=w)
    assert out.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(out[0, 0], np.full((2, 2), 3.0))
    np.testing.assert_array_equal(out[0, 1], np.full((2, 2), 10.0))


def test_groups_2_equals_two_independent_calls():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3, 2))
    w = rng.standard_normal((4, 3, 2, 3))        # groups 2: C_in 4, C_out 6
    params = {"groups": 2, "stride": [2, 1], "padding": [1, 0, 0, 1], "dilation": [1, 2]}
    out = ref(params, x=x, w=w)
    assert out.shape[1] == 6
    single = {k: v for k, v in params.items() if k != "groups"}
    np.testing.assert_allclose(out[:, :3], ref(single, x=x[:, :2], w=w[:2]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out[:, 3:], ref(single, x=x[:, 2:], w=w[2:]), rtol=1e-12, atol=1e-12)
    # and the second group's input does not reach the first group's outputs
    x2 = x.copy()
    x2[:, 2:] = 0
    np.testing.assert_array_equal(ref(params, x=x2, w=w)[:, :3], out[:, :3])
    assert not np.any(ref(params, x=x2, w=w)[:, 3:])


@pytest.mark.parametrize("params", [
    {"stride": 2, "padding": "same", "bias": True},
    {"stride": [1, 3], "padding": [1, 0, 2, 1], "output_padding": [0, 2], "dilation": [2, 1]},
    {"stride": 3, "padding": "valid", "groups": 2},
])
def test_nhwc_layout_is_nchw_transposed(params):
    rng = np.random.default_rng(7)
    arrays = {"x": rng.standard_normal((2, 4, 3, 5)), "w": rng.standard_normal((4, 3, 2, 3)),
              "b": rng.standard_normal(3 * params.get("groups", 1))}
    nchw = reference({**params, "layout": "NCHW"}, arrays)
    nhwc = reference({**params, "layout": "NHWC"}, arrays)
    assert nhwc.shape == (nchw.shape[0], nchw.shape[2], nchw.shape[3], nchw.shape[1])
    np.testing.assert_array_equal(nhwc, nchw.transpose(0, 2, 3, 1))
    assert reference(params, arrays).shape == nchw.shape   # NCHW is the default


def test_reference_does_not_modify_inputs():
    x, w, b = X.copy(), W.copy(), np.array([1.0])
    ref({"stride": 2, "padding": 1}, x=x, w=w, b=b)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(w, W)
    assert b[0] == 1.0


def test_zero_batch():
    out = ref({"stride": 2}, x=np.zeros((0, 1, 2, 2)))
    assert out.shape == (0, 1, 4, 4)


# --------------------------------------------------------------------------- dtypes


def test_float16_path_exact_on_small_integers():
    out = ref({"stride": 1, "padding": 0}, x=X, w=np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2),
              dtype=np.float16)
    assert out.dtype == np.float16
    expected = np.array([[1, 4, 4], [6, 20, 16], [9, 24, 16]], dtype=float)
    np.testing.assert_array_equal(out[0, 0].astype(np.float64), expected)


def test_float16_path_close_to_float64():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 4, 5, 4)).astype(np.float16).astype(np.float64)
    w = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float16).astype(np.float64)
    b = rng.uniform(-1, 1, 3).astype(np.float16).astype(np.float64)
    params = {"stride": 2, "padding": "same", "dilation": [1, 2]}
    lo = ref(params, x=x, w=w, b=b, dtype=np.float16)
    hi = ref(params, x=x, w=w, b=b)
    assert lo.dtype == np.float16 and lo.shape == hi.shape
    # accumulation of at most 4·3·3 products of magnitude <= 1: error well below 0.05
    np.testing.assert_allclose(lo.astype(np.float64), hi, atol=0.05)
    assert np.any(lo.astype(np.float64) != hi)   # really computed in float16


def test_float32_path_dtype():
    out = ref({"stride": 2}, dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], FULL_S2)


def test_same_lower_puts_the_odd_crop_at_the_top_left():
    # k=2, s=1, H=2: F = 3, H_out = 2, pad_needed 1 -> same: top 0 (rows 0..1); same_lower: top 1 (rows 1..2).
    np.testing.assert_array_equal(ref({"stride": 1, "padding": "same_lower"})[0, 0], FULL_S1[1:, 1:])
    # k=3, s=2, H=2, output_shape 3: needed 2 -> 1/1 either way; default 4: needed 1 -> top 1 for same_lower.
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    full = np.zeros((5, 5))
    for a in range(2):
        for b in range(2):
            full[2 * a:2 * a + 3, 2 * b:2 * b + 3] += X[0, 0, a, b] * w[0, 0]
    np.testing.assert_array_equal(ref({"stride": 2, "padding": "same_lower"}, w=w)[0, 0], full[1:, 1:])
    np.testing.assert_array_equal(ref({"stride": 2, "padding": "same_lower", "output_shape": [3, 3]}, w=w)[0, 0],
                                  full[1:4, 1:4])



# --------------------------------------------------------------------------- adjoint identity


def axis_geometry(size, k, s, d, form, pads, op, out):
    """(crop_before, H_out, F) for one axis, derived here from DESIGN.md §2."""
    full = (size - 1) * s + d * (k - 1) + 1
    if form == "valid":
        return 0, (full if out is None else out), full
    if form in ("same", "same_lower"):   # the odd crop at the end; same_lower (ONNX SAME_LOWER): the start
        out = size * s if out is None else out
        needed = max(0, full - out)
        return (needed - needed // 2 if form == "same_lower" else needed // 2), out, full
    lo, hi = pads
    return lo, (full - lo - hi + op if out is None else out), full


def conv2d_direct(canvas, w, stride, dilation, groups, in_hw):
    """Plain-loop conv2d (cross-correlation) of ``canvas`` (N, C_out, F_h, F_w) with the
    transposed-convolution weight ``w`` (C_in, C_out/groups, kh, kw), giving (N, C_in, H, W)."""
    n_, c_out, _, _ = canvas.shape
    c_in, cog, kh, kw = w.shape
    cig = c_in // groups
    (sh, sw), (dh, dw), (h, wd) = stride, dilation, in_hw
    out = np.zeros((n_, c_in, h, wd))
    for n in range(n_):
        for c in range(c_in):
            g = c // cig
            for a in range(h):
                for b in range(wd):
                    acc = 0.0
                    for o in range(cog):
                        for i in range(kh):
                            for j in range(kw):
                                acc += canvas[n, g * cog + o, a * sh + i * dh, b * sw + j * dw] * w[c, o, i, j]
                    out[n, c, a, b] = acc
    return out


@st.composite
def calls(draw):
    groups = draw(st.integers(1, 2))
    cig, cog = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    h, wd = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    form = draw(st.sampled_from(["explicit", "same", "same_lower", "valid"]))
    use_shape = draw(st.booleans())
    params = {"groups": groups, "kernel_size": [kh, kw],
              "stride": sh if sh == sw and draw(st.booleans()) else [sh, sw],
              "dilation": dh if dh == dw and draw(st.booleans()) else [dh, dw],
              "layout": draw(st.sampled_from(["NCHW", "NHWC"]))}
    geometry = []
    out_shape = []
    ops_ = []
    pads = []
    for size, k, s, d in ((h, kh, sh, dh), (wd, kw, sw, dw)):
        full = (size - 1) * s + d * (k - 1) + 1
        lo = hi = op = 0
        out = None
        if form == "explicit":
            lo, hi = draw(st.integers(0, 3)), draw(st.integers(0, 3))
            op = draw(st.integers(0, max(s, d) - 1))
            if use_shape:
                out, op = full - lo - hi + op, 0
        elif form in ("same", "same_lower") and use_shape:
            out = draw(st.integers((size - 1) * s + 1, size * s))
        elif form == "valid" and use_shape:
            out = draw(st.integers(full, full + s - 1))
        pads += [lo, hi]
        ops_.append(op)
        out_shape.append(out)
        geometry.append(axis_geometry(size, k, s, d, form, (lo, hi), op, out))
    assume(all(g[1] >= 1 for g in geometry))
    params["padding"] = pads if form == "explicit" else form
    if any(ops_):
        params["output_padding"] = ops_
    if use_shape:
        params["output_shape"] = out_shape
    shapes = ((n, groups * cig, h, wd), (groups * cig, cog, kh, kw))
    return params, shapes, geometry


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(calls(), st.integers(0, 2**32 - 1))
def test_adjoint_identity_against_direct_conv2d(call, seed):
    params, (x_shape, w_shape), geometry = call
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    groups = params["groups"]
    n, c_in, h, wd = x_shape
    c_out = w_shape[1] * groups
    (top, out_h, full_h), (left, out_w, full_w) = geometry

    t = reference(params, {"x": x, "w": w})
    if params["layout"] == "NHWC":
        assert t.shape == (n, out_h, out_w, c_out)
        t = t.transpose(0, 3, 1, 2)
    assert t.shape == (n, c_out, out_h, out_w)

    # the oracle and the canonical semantics agree on the shape
    p = Params(**{**params, "input": [n, h, wd, c_in] if params["layout"] == "NHWC" else [n, c_in, h, wd],
                  "out_channels": c_out})
    assert resolve(p).out_hw == (out_h, out_w)

    y = rng.standard_normal(t.shape)
    # the adjoint of "crop full[top : top + out]" is "place y at top on a zero canvas of size F"
    canvas = np.zeros((n, c_out, full_h, full_w))
    rows = min(out_h, full_h - top)
    cols = min(out_w, full_w - left)
    if rows > 0 and cols > 0:
        canvas[:, :, top:top + rows, left:left + cols] = y[:, :, :rows, :cols]
    sh, sw = (params["stride"],) * 2 if isinstance(params["stride"], int) else params["stride"]
    dh, dw = (params["dilation"],) * 2 if isinstance(params["dilation"], int) else params["dilation"]
    cx = conv2d_direct(canvas, w, (sh, sw), (dh, dw), groups, (h, wd))

    lhs = float(np.sum(cx * x))
    rhs = float(np.sum(y * t))
    scale = float(np.sum(np.abs(y * t))) + float(np.sum(np.abs(cx * x))) + 1.0
    assert abs(lhs - rhs) <= 1e-10 * scale, (lhs, rhs)


def test_direct_conv2d_helper_is_itself_correct():
    """The test's conv2d, checked by hand: 1 channel, stride 2, dilation 1."""
    canvas = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[1.0, 0.0], [0.0, -1.0]]).reshape(1, 1, 2, 2)
    out = conv2d_direct(canvas, w, (2, 2), (1, 1), 1, (2, 2))
    # out[a, b] = canvas[2a, 2b] - canvas[2a+1, 2b+1] = -5 everywhere
    np.testing.assert_array_equal(out[0, 0], np.full((2, 2), -5.0))


# --------------------------------------------------------------------------- frameworks


@pytest.mark.parametrize("params", [
    {"stride": 1, "padding": [1, 1, 0, 0], "output_padding": 0, "dilation": 1, "groups": 1},
    {"stride": 2, "padding": [1, 1, 2, 2], "output_padding": [1, 0], "dilation": 1, "groups": 1},
    {"stride": [3, 2], "padding": [0, 0, 1, 1], "output_padding": [2, 1], "dilation": [2, 1], "groups": 2},
    {"stride": 1, "padding": [2, 2, 1, 1], "output_padding": [1, 0], "dilation": [2, 3], "groups": 2},
])
def test_values_agree_with_pytorch(params):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    g = params["groups"]
    x, w, b = rng.standard_normal((2, 4, 4, 5)), rng.standard_normal((4, 6 // g, 3, 2)), rng.standard_normal(6)
    pad = params["padding"]
    theirs = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=params["stride"],
        padding=(pad[0], pad[2]), output_padding=params["output_padding"], groups=g,
        dilation=params["dilation"]).numpy()
    ours = reference(params, {"x": x, "w": w, "b": b})
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


_TF_VALUES = textwrap.dedent("""
    import json, sys
    import numpy as np
    try:
        import tensorflow as tf
    except Exception as exc:
        print(json.dumps({"skip": repr(exc)})); sys.exit(0)
    from harness.ops.conv2d_transpose.oracle import reference
    cases = [
        # (H, W, kh, kw, s, padding, output_shape)
        (6, 5, 4, 4, 1, "same", None),      # pad_needed 3: top 1, bottom 2
        (5, 4, 3, 3, 2, "same", None),      # pad_needed 1: top 0, bottom 1
        (5, 5, 5, 4, 2, "same", None),      # pad_needed 3 and 2
        (5, 4, 3, 3, 2, "same", [9, 7]),    # output_shape moves the crop
        (4, 3, 2, 3, 3, "same", None),      # K < s: rows past F
        (4, 3, 2, 3, 3, "valid", None),
        (4, 3, 2, 3, 3, "valid", [12, 11]), # rows past F
        (5, 4, 3, 2, 2, [1, 2, 0, 1], None),
        (5, 4, 3, 2, 2, [1, 0, 1, 1], [11, 7]),
    ]
    rng = np.random.default_rng(5)
    rows = []
    for h, wd, kh, kw, s, padding, out_shape in cases:
        x = rng.standard_normal((2, 3, h, wd)).astype(np.float32).astype(np.float64)
        w = rng.standard_normal((3, 4, kh, kw)).astype(np.float32).astype(np.float64)
        params = {"kernel_size": [kh, kw], "stride": s, "padding": padding}
        if out_shape:
            params["output_shape"] = out_shape
        ours = reference(params, {"x": x, "w": w})
        tf_pad = padding.upper() if isinstance(padding, str) else \\
            [[0, 0], padding[0:2], padding[2:4], [0, 0]]
        y = tf.nn.conv2d_transpose(tf.constant(x.transpose(0, 2, 3, 1)),
                                   tf.constant(w.transpose(2, 3, 1, 0)),
                                   [2, ours.shape[2], ours.shape[3], 4], strides=s, padding=tf_pad)
        theirs = y.numpy().transpose(0, 3, 1, 2)
        rows.append({"case": repr((h, wd, kh, kw, s, padding, out_shape)),
                     "ours": list(ours.shape), "theirs": list(theirs.shape),
                     "err": float(np.max(np.abs(ours - theirs))) if ours.shape == theirs.shape else None})
    print(json.dumps({"rows": rows}))
""")


def test_values_agree_with_tensorflow_same_valid_explicit():
    """TF's crop position for odd SAME padding, VALID with a larger output_shape, explicit crops."""
    result = run_tensorflow(_TF_VALUES)
    for row in result["rows"]:
        assert row["ours"] == row["theirs"], row
        assert row["err"] < 1e-4, row


def test_keras_same_output_padding_crops_tensorflow_side():
    # size_rule 'keras', same, k=2, s=2, op=1 on H=2: out = (2-1)*2 + 0 + 1 = 3; F = 4, C = 1: crop 0 top,
    # 1 bottom (Keras' torch backend would crop the top): FULL_S2 rows/cols 0..2.
    y = ref({"stride": 2, "padding": "same", "output_padding": 1, "size_rule": "keras"})
    np.testing.assert_array_equal(y[0, 0], FULL_S2[:3, :3])


def test_keras_valid_output_padding_adds_zero_rows():
    # valid, s=2, op=1: F + 1 = 5 rows; row 4 is past the full output: zeros.
    y = ref({"stride": 2, "padding": "valid", "output_padding": 1, "size_rule": "keras"})
    np.testing.assert_array_equal(y[0, 0, :4, :4], FULL_S2)
    assert not y[0, 0, 4].any() and not y[0, 0, :, 4].any()
