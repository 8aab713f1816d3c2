"""The conv2d operator package ``harness.ops.conv2d``: semantics, oracle and numba kernel.

Evidence, none of it borrowed from the code under test:

* oracle hand cases whose every number is written out here;
* the oracle against ``torch.nn.functional.conv2d`` in float64 on random shapes
  (explicit padding, asymmetric padding applied with ``F.pad``, and PyTorch's
  own ``padding='same'`` at stride 1);
* SAME/VALID output shapes, validity and values against TensorFlow's
  ``tf.nn.conv2d`` (run in a subprocess);
* the adjoint identity ⟨conv2d(x, w), y⟩ = ⟨x, conv2d_transpose(y, w)⟩ between
  this oracle and the conv2d_transpose oracle, on random shapes;
* the numba kernel against the oracle in every dtype, layout, groups,
  dilation and padding form, the error bounded by the oracle on |x|, |w|, |b|;
* the semantics' rejections and resolved values.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from helpers import run_tensorflow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.data import round_to_dtype
from harness.ops.conv2d import numba_kernel, numba_weights
from harness.ops.conv2d.oracle import reference
from harness.ops.conv2d.derived import derived, footprint
from harness.ops.conv2d.semantics import InvalidCall, Params, input_shapes, resolve
from harness.ops.conv2d_transpose.oracle import reference as transpose_reference

UNIT = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24, "float64": 2.0 ** -53}
def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def ref(x, w, b=None, **params):
    return reference(params, {"x": np.asarray(x, float), "w": np.asarray(w, float), "b": b})


# --------------------------------------------------------------------------- oracle by hand

X33 = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)          # [[1 2 3] [4 5 6] [7 8 9]]
X44 = np.arange(16.0).reshape(1, 1, 4, 4)


def test_hand_valid_2x2():
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    # out[0,0] = 1·1 + 2·2 + 4·3 + 5·4, and so on
    np.testing.assert_array_equal(ref(X33, w)[0, 0], [[37, 47], [67, 77]])
    np.testing.assert_array_equal(ref(X33, w, padding="valid")[0, 0], [[37, 47], [67, 77]])


def test_hand_bias_and_explicit_padding():
    w = np.ones((1, 1, 2, 2))
    out = ref(X33, w, np.array([0.5]), padding=[1, 0, 0, 0])
    # a zero row on top: first row sums x[0, j:j+2] only
    np.testing.assert_array_equal(out[0, 0], [[3.5, 5.5], [12.5, 16.5], [24.5, 28.5]])


def test_hand_stride_2():
    w = np.array([[1.0, 0.0], [0.0, -1.0]]).reshape(1, 1, 2, 2)
    # out[a, b] = x[2a, 2b] − x[2a+1, 2b+1] = −5 everywhere
    np.testing.assert_array_equal(ref(X44, w, stride=2)[0, 0], np.full((2, 2), -5.0))


def test_hand_dilation():
    w = np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(1, 1, 2, 2)
    # K = 3: the four corners of the 3×3 input, 1·1 + 3·10 + 7·100 + 9·1000
    np.testing.assert_array_equal(ref(X33, w, dilation=2)[0, 0], [[9731]])
    # dilation on the width only: x[0,0] + 10·x[0,2] + 100·x[1,0] + 1000·x[1,2] = 1 + 30 + 400 + 6000
    np.testing.assert_array_equal(ref(X33, w, dilation=[1, 2])[0, 0], [[6431], [9764]])


def test_hand_groups():
    x = np.array([2.0, 3.0]).reshape(1, 2, 1, 1)
    w = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(4, 1, 1, 1)
    # group 0 (channel 2) feeds outputs 0-1, group 1 (channel 3) outputs 2-3
    np.testing.assert_array_equal(ref(x, w, groups=2).ravel(), [2, 20, 300, 3000])
    w2 = np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(2, 2, 1, 1)
    np.testing.assert_array_equal(ref(x, w2).ravel(), [32, 3200])      # groups 1: both channels


def test_hand_same_odd_padding_goes_bottom_right():
    ones = np.ones((1, 1, 2, 2))
    out = ref(X44, ones, padding="same")[0, 0]
    # H = 4, K = 2, s = 1: pad_needed 1, all of it at the bottom/right
    assert out.shape == (4, 4)
    assert out[0, 0] == 0 + 1 + 4 + 5 and out[3, 3] == 15 and out[3, 0] == 12 + 13
    out = ref(X44, np.ones((1, 1, 3, 3)), stride=2, padding="same")[0, 0]
    # H_out = ceil(4/2) = 2, pad_needed = 1·2 + 3 − 4 = 1: bottom/right; windows rows 0-2 and 2-3
    np.testing.assert_array_equal(out, [[0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10, 2 + 3 + 6 + 7 + 10 + 11],
                                        [8 + 9 + 10 + 12 + 13 + 14, 10 + 11 + 14 + 15]])


def test_hand_nhwc():
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    w = np.array([1.0, -1.0]).reshape(2, 1, 1, 1)
    out = ref(x, w, np.array([10.0, 20.0]), layout="NHWC")
    assert out.shape == (1, 2, 2, 2)                          # N, H, W, C
    np.testing.assert_array_equal(out[0, :, :, 0], [[11, 12], [13, 14]])
    np.testing.assert_array_equal(out[0, 1, 0], [13, 17])     # pixel (1, 0): both channels


def test_padding_terms_are_absent_not_zero_times_weight():
    w = np.full((1, 1, 3, 3), np.inf)
    out = ref(np.ones((1, 1, 1, 1)), w, padding=1)
    assert out.shape == (1, 1, 1, 1) and out[0, 0, 0, 0] == np.inf   # 1 · inf, no 0 · inf = NaN


# --------------------------------------------------------------------------- oracle vs PyTorch


@st.composite
def torch_calls(draw):
    groups = draw(st.integers(1, 3))
    cig, cog = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    d = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    form = draw(st.sampled_from(["symmetric", "asymmetric", "same"]))
    s = [1, 1] if form == "same" else [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    if form == "symmetric":
        pads = [pads[0], pads[0], pads[2], pads[2]]
    eff = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    total = (0, 0) if form == "same" else (pads[0] + pads[1], pads[2] + pads[3])
    hw = [draw(st.integers(max(1, e - t), max(1, e - t, 9))) for e, t in zip(eff, total)]
    return dict(groups=groups, kernel_size=k, dilation=d, stride=s,
                padding="same" if form == "same" else pads), (draw(st.integers(1, 2)), groups * cig, *hw), groups * cog


@examples(80)
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@given(torch_calls(), st.integers(0, 2**32 - 1))
def test_oracle_matches_torch_float64(call, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    params, x_shape, c_out = call
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((c_out, x_shape[1] // params["groups"], *params["kernel_size"]))
    b = rng.standard_normal(c_out)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    kw = dict(stride=params["stride"], dilation=params["dilation"], groups=params["groups"])
    if params["padding"] == "same":
        want = F.conv2d(xt, wt, bt, padding="same", **kw).numpy()
    else:
        t, bo, l, r = params["padding"]
        want = F.conv2d(F.pad(xt, (l, r, t, bo)), wt, bt, **kw).numpy()
    got = reference(params, {"x": x, "w": w, "b": b})
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # the semantics agrees on the shape
    r = resolve(Params(input=list(x_shape), out_channels=c_out, **params))
    assert r.output_shape == got.shape


# --------------------------------------------------------------------------- SAME/VALID vs TensorFlow

_TF_SHAPES = textwrap.dedent("""
    import json, sys
    import numpy as np
    try:
        import tensorflow as tf
    except Exception as exc:  # a broken install is a skip, not a failure
        print(json.dumps({"skip": repr(exc)})); sys.exit(0)
    rows = []
    rng = np.random.default_rng(5)
    for pad in ("SAME", "VALID"):
        for h in range(1, 8):
            for k in range(1, 6):
                for s in range(1, 4):
                    for d in (1, 2):
                        if d > 1 and s > 1:
                            continue          # tf.nn.conv2d: dilation needs stride 1 on CPU
                        x = rng.standard_normal((1, h, h + 1, 2))
                        w = rng.standard_normal((k, k, 2, 3))
                        try:
                            y = tf.nn.conv2d(x, w, strides=s, padding=pad, dilations=d).numpy()
                            rows.append([pad, h, k, s, d, x.tolist(), w.tolist(), list(y.shape), y.tolist()])
                        except (tf.errors.InvalidArgumentError, ValueError):
                            rows.append([pad, h, k, s, d, None, None, None, None])
    print(json.dumps({"rows": rows}))
""")


def test_same_valid_shapes_validity_and_values_agree_with_tensorflow():
    rows = run_tensorflow(_TF_SHAPES)["rows"]
    assert len(rows) > 200
    rejected = empty = 0
    for pad, h, k, s, d, x, w, tf_shape, y in rows:
        params = dict(input=[1, h, h + 1, 2], layout="NHWC", out_channels=3, kernel_size=k, stride=s, dilation=d,
                      padding=pad.lower())
        where = dict(padding=pad, h=h, k=k, s=s, d=d)
        if tf_shape is None or 0 in tf_shape:
            # TensorFlow refuses a negative VALID size but returns an empty tensor for ceil((H − K + 1)/s) = 0;
            # the canonical semantics (with PyTorch) rejects both: an expected divergence, counted below.
            rejected += 1
            empty += tf_shape is not None
            with pytest.raises(InvalidCall):
                resolve(Params(**params))
            continue
        assert resolve(Params(**params)).output_shape == tuple(tf_shape), where
        xc = np.asarray(x).transpose(0, 3, 1, 2)                        # NHWC -> NCHW
        wc = np.asarray(w).transpose(3, 2, 0, 1)                        # HWIO -> OIHW
        got = reference(params, {"x": xc, "w": wc})
        np.testing.assert_allclose(got, y, rtol=1e-10, atol=1e-10, err_msg=str(where))
    assert rejected - empty > 10 and empty > 10                         # VALID with K > H, both kinds


# --------------------------------------------------------------------------- adjoint identity


def test_hand_same_lower_odd_padding_goes_top_left():
    # ONNX SAME_LOWER: H = 4, K = 2, s = 1: pad_needed 1, all of it at the top/left.
    out = ref(X44, np.ones((1, 1, 2, 2)), padding="same_lower")[0, 0]
    assert out.shape == (4, 4)
    assert out[0, 0] == 0 and out[3, 3] == 10 + 11 + 14 + 15 and out[0, 3] == 2 + 3
    # k 3, s 2: pad_needed 1 at the top/left; windows rows −1..1 and 1..3
    out = ref(X44, np.ones((1, 1, 3, 3)), stride=2, padding="same_lower")[0, 0]
    np.testing.assert_array_equal(out, [[0 + 1 + 4 + 5, 1 + 2 + 3 + 5 + 6 + 7],
                                        [4 + 5 + 8 + 9 + 12 + 13, 5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15]])
    r = resolve(Params(input=[1, 1, 4, 4], out_channels=1, kernel_size=3, stride=2, padding="same_lower"))
    assert r.pads == (1, 0, 1, 0) and r.out_hw == (2, 2)


@st.composite
def adjoint_calls(draw):
    groups = draw(st.integers(1, 3))
    cig, cog = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    padding = draw(st.sampled_from(["same", "same_lower", "valid", "explicit"]))
    if padding == "explicit":
        padding = [draw(st.integers(0, 3)) for _ in range(4)]
    hw = [draw(st.integers(1, 8)), draw(st.integers(1, 8))]
    params = dict(input=[draw(st.integers(1, 2)), groups * cig, *hw], out_channels=groups * cog, kernel_size=k,
                  stride=s, dilation=d, groups=groups, padding=padding)
    try:
        resolve(Params(**params))
    except InvalidCall:
        hw = [max(h, dd * (kk - 1) + 1) for h, kk, dd in zip(hw, k, d)]   # make VALID/explicit reachable
        params["input"][2:] = hw
    return params


@examples(150)
@given(adjoint_calls(), st.integers(0, 2**32 - 1))
def test_adjoint_identity_with_the_conv2d_transpose_oracle(params, seed):
    r = resolve(Params(**params))
    rng = np.random.default_rng(seed)
    n, c_in, h, wd = params["input"]
    x = rng.standard_normal((n, c_in, h, wd))
    w = rng.standard_normal((params["out_channels"], c_in // params["groups"], *params["kernel_size"]))
    fx = reference(params, {"x": x, "w": w})
    y = rng.standard_normal(fx.shape)
    # The same tensor w is the transposed call's weight (C_in of the transpose = C_out here); padding p
    # becomes crops p, and output_shape asks for conv2d's input size (the rows past the last window).
    t_params = dict(stride=params["stride"], dilation=params["dilation"], groups=params["groups"],
                    padding=list(r.pads), output_shape=[h, wd])
    ty = transpose_reference(t_params, {"x": y, "w": w})
    assert ty.shape == x.shape
    lhs, rhs = float(np.sum(fx * y)), float(np.sum(x * ty))
    scale = float(np.sum(np.abs(fx * y))) + float(np.sum(np.abs(x * ty))) + 1.0
    assert abs(lhs - rhs) <= 1e-12 * scale, (lhs, rhs)


# --------------------------------------------------------------------------- numba kernel vs oracle


def check_close(got, want, bound, dtype):
    """|got − want| ≤ accumulation error + one final rounding, per element."""
    if dtype in ("float16", "bfloat16"):
        tol = 2e-5 * bound + UNIT[dtype] * np.abs(want) + (2.0 ** -25 if dtype == "float16" else 0.0)
    else:
        tol = (1e-12 if dtype == "float64" else 1e-5) * bound + 1e-300
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= tol), f"max excess {np.max(err - tol)} at {np.unravel_index(np.argmax(err - tol), err.shape)}"


def run_kernel(params, x, w, b, dtype):
    r = resolve(Params(**params))
    return numba_kernel.conv2d(x, w, b, stride=r.stride, dilation=r.dilation, groups=r.groups, pads=r.pads,
                               out_hw=r.out_hw, layout=r.layout, dtype=dtype)


def kernel_vs_oracle(params, dtype, seed, fill=None):
    rng = np.random.default_rng(seed)
    shapes = input_shapes(Params(**params))
    arrays = {name: round_to_dtype(rng.standard_normal(shape) if fill is None else fill(shape), dtype)
              for name, shape in shapes.items()}
    want = reference(params, arrays)
    bound = reference(params, {k: np.abs(v) for k, v in arrays.items()})
    got = run_kernel(params, arrays["x"], arrays["w"], arrays.get("b"), dtype)
    assert got.shape == want.shape
    assert got.dtype == (np.float64 if dtype == "float64" else np.float32)
    check_close(got, want, bound, dtype)


FIXED = [  # every padding form, strides, dilation, groups, and channel counts for every kernel path
    dict(input=[2, 3, 7, 6], out_channels=5, kernel_size=3, padding="same"),
    dict(input=[1, 4, 9, 8], out_channels=17, kernel_size=[3, 2], stride=[2, 3], padding="same"),
    dict(input=[2, 6, 8, 7], out_channels=6, kernel_size=3, groups=6, dilation=2, padding="valid"),
    dict(input=[1, 4, 6, 9], out_channels=40, kernel_size=[2, 3], stride=2, dilation=[1, 2], groups=2,
         padding=[2, 0, 1, 3]),
    dict(input=[1, 2, 5, 5], out_channels=2, kernel_size=1, stride=3, padding=4),
    dict(input=[3, 8, 5, 26], out_channels=66, kernel_size=3, groups=2, padding=[0, 2, 1, 1]),
    # depthwise path: rows wider than two float32 vectors (every pixel-tile width), 3 channels per group
    dict(input=[2, 3, 4, 70], out_channels=9, kernel_size=[2, 3], stride=[1, 2], groups=3, padding="same"),
    dict(input=[1, 2, 5, 75], out_channels=2, kernel_size=3, dilation=2, groups=2, padding=[1, 0, 3, 2]),
    # im2col path: narrow rows, Cig·kh·kw > 512 (a partial channel block, a stride, groups)
    dict(input=[1, 64, 7, 9], out_channels=24, kernel_size=3, stride=2, padding=[1, 0, 2, 1]),
    dict(input=[2, 120, 5, 6], out_channels=40, kernel_size=3, groups=2, padding="same"),
    dict(input=[1, 64, 6, 7], out_channels=32, kernel_size=3, padding=[1, 1, 0, 1]),   # 2 pixel vectors
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("case", range(len(FIXED)))
def test_kernel_matches_oracle(case, dtype, layout):
    params = dict(FIXED[case], bias=True, layout=layout)
    if layout == "NHWC":
        n, c, h, w = params["input"]
        params["input"] = [n, h, w, c]
    kernel_vs_oracle(params, dtype, case)


@st.composite
def kernel_calls(draw):
    groups = draw(st.integers(1, 3))
    cog = draw(st.sampled_from([1, 2, 4, 5, 8, 16, 17, 33]))
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    padding = draw(st.sampled_from(["same", "same_lower", "valid", "explicit"]))
    if padding == "explicit":
        padding = [draw(st.integers(0, 4)) for _ in range(4)]
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    n, c, h, w = draw(st.integers(0, 2)), groups * draw(st.integers(1, 3)), draw(st.integers(4, 9)), \
        draw(st.integers(4, 30))
    params = dict(input=[n, h, w, c] if layout == "NHWC" else [n, c, h, w], layout=layout, out_channels=groups * cog,
                  kernel_size=k, stride=[draw(st.integers(1, 3)), draw(st.integers(1, 3))],
                  dilation=[draw(st.integers(1, 2)), draw(st.integers(1, 2))], groups=groups, padding=padding,
                  bias=draw(st.booleans()))
    return params, draw(st.sampled_from(["float16", "bfloat16", "float32", "float64"]))


@examples(60)
@given(kernel_calls(), st.integers(0, 2**32 - 1))
def test_kernel_matches_oracle_random(call, seed):
    params, dtype = call
    try:
        resolve(Params(**params))
    except InvalidCall:
        return
    kernel_vs_oracle(params, dtype, seed)


@pytest.mark.parametrize("groups,cig,cog,nb_max,dtype", [
    (1, 40, 70, 4, np.float32),    # 16-channel blocks transposed in registers, a partial one, partial block
    (2, 16, 20, 1, np.float32),
    (1, 24, 33, 4, np.float64),
    (3, 5, 6, 2, np.float32),      # no full block of input channels: the scalar path
])
def test_weight_packing_layout(groups, cig, cog, nb_max, dtype):
    """pack_weights' blocks, element by element, against the layout its docstring gives."""
    kh, kw, lanes = 3, 2, 16 if dtype == np.float32 else 8
    w = np.random.default_rng(1).standard_normal((groups * cog, cig, kh, kw))
    wp = np.full((groups, kh * kw * cig * (-(-cog // lanes) * lanes)), np.nan, dtype)
    total = numba_weights.pack_weights(w, wp, lanes, nb_max)
    assert np.isclose(total, w.sum())
    want = np.zeros_like(wp)
    nrow = kh * kw * cig
    for g in range(groups):
        ob0 = 0
        while ob0 < cog:
            ob = min(nb_max, -(-(cog - ob0) // lanes)) * lanes
            for t in range(kh * kw):
                for ci in range(cig):
                    for o in range(min(ob, cog - ob0)):
                        want[g, ob0 * nrow + (t * cig + ci) * ob + o] = w[g * cog + ob0 + o, ci, t // kw, t % kw]
            ob0 += ob
    np.testing.assert_array_equal(wp, want.astype(dtype))


@pytest.mark.parametrize("cog", [2, 16])          # the pixel path and the tile path both fall back
def test_kernel_non_finite_weights_follow_the_definition(cog):
    params = dict(input=[1, 2, 4, 5], out_channels=2 * cog, kernel_size=3, padding=1, groups=2)
    x = np.arange(40.0).reshape(1, 2, 4, 5) - 7.0
    w = np.ones((2 * cog, 1, 3, 3))
    w[0, 0, 0, 0] = np.inf
    w[-1, 0, 2, 2] = np.nan
    with np.errstate(invalid="ignore"):
        want = reference(params, {"x": x, "w": w})
    got = run_kernel(params, x, w, None, "float64")
    np.testing.assert_array_equal(got, want)                          # NaN where the oracle has NaN, inf too
    assert np.isinf(want).any() and np.isnan(want).any() and np.isfinite(want).any()


# --------------------------------------------------------------------------- semantics


def rejects(field, needle, **kw):
    with pytest.raises(InvalidCall) as info:
        resolve(Params(**kw))
    assert info.value.field == field and needle in info.value.reason, info.value.reason


def test_rejections():
    base = dict(input=[1, 4, 5, 5], out_channels=4, kernel_size=3)
    rejects("groups", "input channels 4 are not divisible by groups 3", **{**base, "groups": 3, "out_channels": 6})
    rejects("groups", "out_channels 6 are not divisible by groups 4", **{**base, "groups": 4, "out_channels": 6})
    rejects("kernel_size", "larger than the padded input 5 + 0 + 0 = 5", **{**base, "kernel_size": 6,
                                                                            "padding": "valid"})
    rejects("kernel_size", "effective kernel 7", **{**base, "dilation": 3})
    rejects("padding", "padded input 2 + 1 + 0 = 3", **{**base, "input": [1, 4, 2, 5], "kernel_size": 4,
                                                        "padding": [1, 0, 0, 0]})
    # SAME is always reachable: ceil(H/s) ≥ 1
    assert resolve(Params(**{**base, "kernel_size": 9, "padding": "same"})).out_hw == (5, 5)


@pytest.mark.parametrize("bad", [
    {"output_padding": 1}, {"output_shape": [3, 3]}, {"padding": [1, 2, 3]}, {"padding": -1},
    {"padding": "SAME"}, {"stride": 0}, {"kernel_size": True}, {"dilation": [1, 2, 3]}, {"groups": 0},
    {"input": [1, 0, 3, 3]}, {"layout": "CHWN"}, {"out_channels": 2.0},
])
def test_params_reject_bad_fields(bad):
    with pytest.raises(ValidationError):
        Params(**{"input": [1, 2, 5, 5], "out_channels": 2, "kernel_size": 3, **bad})


def test_resolved_values():
    r = resolve(Params(input=[2, 6, 4, 6], layout="NHWC", out_channels=6, kernel_size=[3, 2], stride=2, groups=3,
                       padding="same", bias=True))
    # H = 6: out 3, pad_needed (3−1)·2 + 3 − 6 = 1 → (0, 1); W = 4, K = 2: out 2, pad_needed 2 + 2 − 4 = 0
    assert r.pads == (0, 1, 0, 0) and r.out_hw == (3, 2) and r.output_shape == (2, 3, 2, 6)
    assert r.accumulation_length == 2 * 3 * 2
    r = resolve(Params(input=[1, 1, 7, 7], out_channels=1, kernel_size=3, stride=3, padding=2))
    assert r.pads == (2, 2, 2, 2) and r.out_hw == (3, 3) and r.output_shape == (1, 1, 3, 3)


def test_footprint_and_derived():
    p = Params(input=[4, 64, 64, 64], out_channels=64, kernel_size=3, padding="same")
    parent, worker = footprint(p, "float32")
    assert parent > 8 * 3 * 4 * 64 * 64 * 64 and worker > 16 * 4 * 64 * 64 * 64      # x, output, copies
    assert footprint(Params(input=[1, 1, 3, 3], out_channels=1, kernel_size=9, padding="valid"))[0] > 0
    d = derived(Params(input=[1, 4, 6, 5], out_channels=4, kernel_size=2, stride=2, padding="same",
                       groups=4).model_dump(), {})
    assert d["valid_call"] and d["padding_form"] == "same" and d["depthwise"]
    assert d["pads"] == [0, 0, 0, 1] and d["asymmetric_pad"] and d["out_size"] == [3, 3]
    bad = derived(Params(input=[1, 3, 2, 2], out_channels=2, kernel_size=3, padding="valid", groups=1).model_dump(),
                  {})
    assert not bad["valid_call"] and bad["out_size"][0] <= 0 and bad["kernel_exceeds_input"]



def test_derived_input_gradient_axes_read_as_xlas_operand_swapper_reads_them():
    """J4 (docs/findings.md): the axes of dx's convolution that XLA keeps as group dimensions, and whether it swaps."""
    trigger = dict(input=[1, 1, 4, 4], out_channels=2, kernel_size=[2, 3], stride=[2, 1], padding=[1, 1, 0, 0])

    def d(**change):
        return derived(Params(**{**trigger, **change}).model_dump(), {})

    assert d()["input_gradient_group_axis"] == [True, False] and d()["input_gradient_swapped"]
    assert d()["out_size"] == [3, 2]                          # dy's 3 rows: the kept window of 2 does not fit
    assert d(padding=[1, 2, 0, 0])["input_gradient_group_axis"] == [True, False]   # the last window still on row 4
    for change in (dict(padding=[1, 3, 0, 0]), dict(padding=[0, 1, 0, 0]), dict(input=[1, 1, 5, 4]),
                   dict(stride=1)):
        assert d(**change)["input_gradient_group_axis"] == [False, False], change
    assert not d(input=[1, 1, 4, 5])["input_gradient_swapped"]             # k_w 3 = W_out 3
    assert not d(input=[1, 1, 4, 3])["input_gradient_swapped"]             # W_out 1, the window spans the input
    assert not d(input=[1, 2, 4, 4], groups=2)["input_gradient_swapped"]   # grouped: never swapped
    found = derived(Params(input=[2, 7, 8, 4], layout="NHWC", out_channels=3, kernel_size=[5, 2], stride=2,
                           dilation=[2, 1], padding=[2, 0, 1, 2], bias=True).model_dump(), {})
    assert found["input_gradient_group_axis"] == [False, True] and found["input_gradient_swapped"]


def test_oracle_imports_only_numpy():
    """The oracle shares nothing with the semantics, the adapters or the numba kernels: it imports numpy and,
    of conform, only the oracles' thread plumbing, which compiles its loops with Numba (Note [Compiled
    conv2d oracle loops]) and imports nothing from conform itself (Note [Oracle threads]: a reproducer embeds
    it whole)."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(reference.__code__.co_filename).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "numpy", "harness.kernels.oracle_threads"}
