"""The four float64 oracles against their definitions written as plain loops, one output element at a time.

The oracles sum with matrix products and vectorised passes (``harness/ops/<op>/oracle.py``); the loops
below sum term by term exactly as the definitions read (DESIGN.md §2, the Notes in each ``semantics``).
Window and crop geometry comes from each operator's ``resolve`` (the oracles re-derive it on their own and
``test_semantics_and_oracles_agree_on_shapes`` / ``test_oracle`` check that), so what is tested here is
which terms each output sums. Agreement is within a few float64 ulps per term of the magnitude ``B``
(summation order differs); a maximum is exact.
"""

from __future__ import annotations

import itertools
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.kernels import oracle_threads
from harness.ops.avg_pool2d import oracle as avg_oracle
from harness.ops.avg_pool2d import semantics as avg
from harness.ops.conv2d import oracle as conv_oracle
from harness.ops.conv2d import semantics as conv
from harness.ops.conv2d_transpose import oracle as transpose_oracle
from harness.ops.conv2d_transpose import semantics as transpose
from harness.ops.max_pool2d import oracle as max_oracle
from harness.ops.max_pool2d import semantics as mx

EPS = np.finfo(np.float64).eps
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def to_layout(out, layout):
    return out.transpose(0, 2, 3, 1) if layout == "NHWC" else out


def resolved(module, fields):
    try:
        params = module.Params(**fields)
        return params.model_dump(), module.resolve(params)
    except (ValidationError, module.InvalidCall):
        assume(False)


def operands(module, params, seed, bias):
    rng = np.random.default_rng(seed)
    shapes = module.input_shapes(module.Params(**params))
    arrays = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    if not bias:
        arrays.pop("b", None)
    return arrays


def assert_within_ulps(got, want, magnitude, terms):
    assert got.shape == want.shape
    bound = 4 * max(terms, 1) * EPS * magnitude
    assert np.all(np.abs(got - want) <= bound), np.max(np.abs(got - want) - bound)


# --------------------------------------------------------------------------- the definitions, as loops


def conv2d_loops(x, w, b, r):
    """out[n, g·Cog + o, y, x] = Σ over c, i, j with the input pixel inside the image of x · w, + b."""
    n, c_in, h, wd = x.shape
    c_out, cig, kh, kw = w.shape
    cog = c_out // r.groups
    (sh, sw), (dh, dw), (top, _, left, _) = r.stride, r.dilation, r.pads
    out = np.zeros((n, c_out, *r.out_hw))
    for m, o, y, xx in itertools.product(range(n), range(c_out), range(r.out_hw[0]), range(r.out_hw[1])):
        g = o // cog
        for c, i, j in itertools.product(range(cig), range(kh), range(kw)):
            row, col = y * sh + i * dh - top, xx * sw + j * dw - left
            if 0 <= row < h and 0 <= col < wd:
                out[m, o, y, xx] += x[m, g * cig + c, row, col] * w[o, c, i, j]
        out[m, o, y, xx] += 0 if b is None else b[o]
    return out


def conv2d_transpose_loops(x, w, b, r):
    """full[n, g·Cog + o, a·s + i·d, b·s + j·d] += x · w, then the crop (rows past F are zeros), + b."""
    n, c_in, h, wd = x.shape
    _, cog, kh, kw = w.shape
    cig = c_in // r.groups
    (sh, sw), (dh, dw), (top, _, left, _) = r.stride, r.dilation, r.crops
    out_h, out_w = r.out_hw
    full = np.zeros((n, cog * r.groups, max(r.full_hw[0], top + out_h), max(r.full_hw[1], left + out_w)))
    for m, c, a, col in itertools.product(range(n), range(c_in), range(h), range(wd)):
        g = c // cig
        for o, i, j in itertools.product(range(cog), range(kh), range(kw)):
            full[m, g * cog + o, a * sh + i * dh, col * sw + j * dw] += x[m, c, a, col] * w[c, o, i, j]
    out = full[:, :, top:top + out_h, left:left + out_w]
    return out + (0 if b is None else b[:, None, None])


def pool_loops(x, r, reduce):
    """``reduce`` over each window's taps inside the input: (values, taps counted with the padding)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw), (top, bottom, left, right) = r.kernel, r.stride, r.dilation, r.pads
    out = np.zeros((n, c, *r.out_hw))
    for m, ch, y, xx in itertools.product(range(n), range(c), range(r.out_hw[0]), range(r.out_hw[1])):
        taps = [(y * sh + i * dh - top, xx * sw + j * dw - left) for i in range(kh) for j in range(kw)]
        inside = [x[m, ch, row, col] for row, col in taps if 0 <= row < h and 0 <= col < w]
        padded = sum(-top <= row < h + bottom and -left <= col < w + right for row, col in taps)
        out[m, ch, y, xx] = reduce(inside, padded)
    return out


def average(inside, padded, include):
    return sum(inside) / (padded if include else len(inside))


# --------------------------------------------------------------------------- random calls

PADDING = st.one_of(st.sampled_from(["same", "same_lower", "valid"]), st.integers(0, 2),
                    st.lists(st.integers(0, 3), min_size=4, max_size=4))
PAIR = st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=2, max_size=2))


@st.composite
def conv_fields(draw, transposed=False):
    groups, cig, cog = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    n, h, w = draw(st.integers(0, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    fields = dict(input=[n, groups * cig, h, w] if layout == "NCHW" else [n, h, w, groups * cig], layout=layout,
                  out_channels=groups * cog, groups=groups, kernel_size=draw(PAIR), stride=draw(PAIR),
                  dilation=draw(st.one_of(st.just(1), PAIR)), padding=draw(PADDING), bias=draw(st.booleans()))
    if transposed:
        fields["output_padding"] = draw(st.integers(0, 2))
        if isinstance(fields["padding"], str) and fields["padding"] != "same_lower":
            fields["size_rule"] = draw(st.sampled_from(["tensorflow", "keras"]))
            if draw(st.booleans()):
                fields["output_shape"] = [draw(st.integers(1, 12)), draw(st.integers(1, 12))]
    return fields


@SETTINGS
@given(conv_fields(), st.integers(0, 2**32 - 1))
def test_conv2d_oracle_sums_the_terms_of_the_definition(fields, seed):
    params, r = resolved(conv, fields)
    arrays = operands(conv, params, seed, fields["bias"])
    want = to_layout(conv2d_loops(arrays["x"], arrays["w"], arrays.get("b"), r), fields["layout"])
    magnitude = conv_oracle.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    assert_within_ulps(conv_oracle.reference(params, arrays), want, magnitude, r.accumulation_length + 1)


@SETTINGS
@given(conv_fields(transposed=True), st.integers(0, 2**32 - 1))
def test_conv2d_transpose_oracle_scatters_the_terms_of_the_definition(fields, seed):
    params, r = resolved(transpose, fields)
    arrays = operands(transpose, params, seed, fields["bias"])
    want = to_layout(conv2d_transpose_loops(arrays["x"], arrays["w"], arrays.get("b"), r), fields["layout"])
    magnitude = transpose_oracle.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    assert_within_ulps(transpose_oracle.reference(params, arrays), want, magnitude, r.accumulation_length + 1)


@st.composite
def pool_fields(draw):
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    n, c, h, w = draw(st.integers(0, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    return dict(input=[n, c, h, w] if layout == "NCHW" else [n, h, w, c], layout=layout,
                kernel_size=draw(PAIR), stride=draw(st.one_of(st.none(), PAIR)), padding=draw(PADDING),
                ceil_mode=draw(st.booleans()))


@SETTINGS
@given(pool_fields(), st.booleans(), st.integers(0, 2**32 - 1))
def test_avg_pool2d_oracle_averages_the_window(fields, include, seed):
    params, r = resolved(avg, {**fields, "count_include_pad": include})
    x = operands(avg, params, seed, False)["x"]
    want = to_layout(pool_loops(x, r, lambda inside, padded: average(inside, padded, include)), fields["layout"])
    assert_within_ulps(avg_oracle.reference(params, {"x": x}), want, avg_oracle.magnitude(params, {"x": x}),
                       r.accumulation_length + 1)


@SETTINGS
@given(pool_fields(), st.one_of(st.just(1), PAIR), st.integers(0, 2**32 - 1))
def test_max_pool2d_oracle_is_the_window_maximum(fields, dilation, seed):
    params, r = resolved(mx, {**fields, "dilation": dilation})
    x = operands(mx, params, seed, False)["x"]
    want = to_layout(pool_loops(x, r, lambda inside, padded: max(inside, default=-np.inf)), fields["layout"])
    np.testing.assert_array_equal(max_oracle.reference(params, {"x": x}), want)


# --------------------------------------------------------------------------- the two conv2d paths


def numpy_only(module, monkeypatch):
    """``module``'s reference with its compiled loops switched off (as without Numba)."""
    monkeypatch.setattr(module, "compiled", lambda loops: None)


class _NanNumPy:
    """NumPy whose ``empty`` float arrays hold NaN: temporaries reused from block to block (the forms allocate
    them once a call) must have every element written before it is read, or the NaN shows."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=float, **kw):
        out = np.empty(shape, dtype, **kw)
        if np.issubdtype(out.dtype, np.floating):
            out.fill(np.nan)
        return out


def with_temporaries(kind, module, monkeypatch):
    if kind == "nan":
        monkeypatch.setattr(module, "np", _NanNumPy())




@pytest.mark.parametrize("groups, cig", [(1, 3), (2, 2), (4, 1)])
def test_conv2d_padding_adds_no_term_even_with_infinite_weights(groups, cig):
    # 2×2 image, 3×3 kernel, padding 1: tap (0, 0) lands in the padding for output pixel (0, 0) and on
    # input pixel (0, 0) for output pixel (1, 1). An infinite weight there gives inf where it meets an input
    # pixel, and no term (not 0 · inf = NaN) where it meets the padding.
    params = conv.Params(input=[1, groups * cig, 2, 2], out_channels=groups, groups=groups, kernel_size=3,
                         padding=1).model_dump()
    x = np.ones((1, groups * cig, 2, 2))
    w = np.ones((groups, cig, 3, 3))
    w[:, :, 0, 0] = np.inf
    out = conv_oracle.reference(params, {"x": x, "w": w})
    assert not np.isnan(out).any()
    # Output pixel (0, 0) reads input rows/cols −1..1: tap (0, 0) is padding; the 4 taps on the image, cig each.
    np.testing.assert_array_equal(out[0, :, 0, 0], [4.0 * cig] * groups)
    assert np.isinf(out[0, :, 1, 1]).all()


@pytest.mark.parametrize("block_bytes", [1000, 15_000])     # one output row a block; two images a block
@pytest.mark.parametrize("gather", ["compiled", "numpy"])     # the terms gathered by either
@pytest.mark.parametrize("temporaries", ["empty", "nan"])
def test_conv2d_both_paths_agree(block_bytes, gather, temporaries, monkeypatch):
    if gather == "numpy":
        numpy_only(conv_oracle, monkeypatch)
    with_temporaries(temporaries, conv_oracle, monkeypatch)
    rng = np.random.default_rng(1)
    params = conv.Params(input=[5, 4, 9, 7], out_channels=6, groups=2, kernel_size=[3, 2], stride=[2, 1],
                         dilation=[1, 2], padding=[2, 0, 1, 3], bias=True).model_dump()
    x, w, b = rng.standard_normal((5, 4, 9, 7)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    r = conv.resolve(conv.Params(**params))
    old, conv_oracle.BLOCK_BYTES = conv_oracle.BLOCK_BYTES, block_bytes
    try:
        gathered = conv_oracle.reference(params, {"x": x, "w": w, "b": b})
        w_inf = w.copy()
        w_inf[0, 0, 0, 0] = np.inf             # sends the call down the term-by-term path
        by_terms = conv_oracle.reference(params, {"x": x, "w": w_inf, "b": b})
    finally:
        conv_oracle.BLOCK_BYTES = old
    magnitude = conv_oracle.reference(params, {"x": np.abs(x), "w": np.abs(w), "b": np.abs(b)})
    assert_within_ulps(gathered, conv2d_loops(x, w, b, r), magnitude, r.accumulation_length + 1)
    want = conv2d_loops(x, w_inf, b, r)
    assert np.isinf(want[:, 0]).any() and not np.isnan(want).any()
    np.testing.assert_array_equal(by_terms[~np.isfinite(want)], want[~np.isfinite(want)])   # ±inf, no NaN
    finite = np.isfinite(want)
    assert_within_ulps(by_terms[finite], want[finite], magnitude[finite], r.accumulation_length + 1)


PART = {conv_oracle: 6, transpose_oracle: 4}    # a form's last arguments: images, channels (conv2d: and rows)

ROW_PRODUCT_CASES = [
    # (oracle, semantics, fields, form): row stride 1, kernel columns gathered, products through the kernel rows
    (conv_oracle, conv, dict(input=[3, 8, 11, 7], out_channels=4, groups=2, kernel_size=[3, 2], stride=[1, 2],
                             dilation=[2, 3], padding=[3, 1, 0, 2], bias=True), "_by_row_products"),
    (conv_oracle, conv, dict(input=[2, 6, 9, 8], out_channels=5, kernel_size=[2, 3], padding="same_lower"),
     "_by_row_products"),
    (transpose_oracle, transpose, dict(input=[3, 8, 6, 7], out_channels=4, groups=2, kernel_size=[3, 2],
                                       dilation=[2, 3], padding=[3, 1, 0, 2], bias=True), "_by_row_products"),
    (transpose_oracle, transpose, dict(input=[2, 6, 5, 4], out_channels=3, kernel_size=3, dilation=[1, 2],
                                       padding=[2, 0, 1, 3]), "_by_row_products"),
]

MATRIX_CASES = [(conv_oracle, conv, dict(input=[2, 6, 9, 8], out_channels=4, groups=2, kernel_size=3, stride=2,
                                         padding=[1, 0, 2, 1], bias=True), "_by_matrix_product")]


@pytest.mark.parametrize("block_bytes", [1, 6_000, 10**9])     # one input row a block; a few rows; all images
@pytest.mark.parametrize("module, semantics, fields, form", ROW_PRODUCT_CASES)
@pytest.mark.parametrize("loops", ["compiled", "numpy"])
@pytest.mark.parametrize("temporaries", ["empty", "nan"])
def test_row_products_in_any_block(block_bytes, module, semantics, fields, form, loops, temporaries, monkeypatch):
    # The gather and the row additions by the compiled loops or by NumPy, the blocks splitting images and rows.
    if loops == "numpy":
        numpy_only(module, monkeypatch)
    with_temporaries(temporaries, module, monkeypatch)
    params, r = semantics.Params(**fields).model_dump(), semantics.resolve(semantics.Params(**fields))
    arrays = operands(semantics, params, 7, fields.get("bias", False))
    used, real = [], getattr(module, form)
    monkeypatch.setattr(module, form, lambda *args: used.append(args[-PART[module]:]) or real(*args))
    monkeypatch.setattr(module, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(module, "ROW_PRODUCT_TERMS", 1)
    if module is transpose_oracle:
        monkeypatch.setattr(module, "LOOP_CHANNELS", 0)              # not the grouped calls' compiled loops
    got = module.reference(params, arrays)
    n, cog = fields["input"][0], fields["out_channels"] // fields.get("groups", 1)
    whole = (0, n, 0, cog) + ((0, r.out_hw[0]) if module is conv_oracle else ())
    assert used == [whole]                                            # all images, channels (and rows)
    magnitude = module.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    loops_of = conv2d_loops if module is conv_oracle else conv2d_transpose_loops
    want = loops_of(arrays["x"], arrays["w"], arrays.get("b"), r)
    assert_within_ulps(got, want, magnitude, r.accumulation_length + 1)


@pytest.mark.parametrize("module, semantics, fields, form", ROW_PRODUCT_CASES[::2] + MATRIX_CASES)
def test_one_image_is_split_across_threads(module, semantics, fields, form, monkeypatch):
    # Fewer images than threads: each thread takes a range of output rows (conv2d: it gathers only their terms)
    # or of output channels of every group (conv2d_transpose), so one image uses both cores. The sums are
    # within the bound, not always those of one thread exactly: BLAS may sum a product of fewer columns in
    # another order (OpenBLAS's Haswell kernels do for row products, as OPENBLAS_CORETYPE=Haswell selects on
    # an AMD Zen 5; its SkylakeX kernels did not).
    fields = {**fields, "input": [1, *fields["input"][1:]]}
    params, r = semantics.Params(**fields).model_dump(), semantics.resolve(semantics.Params(**fields))
    arrays = operands(semantics, params, 5, fields.get("bias", False))
    monkeypatch.setattr(module, "free_cores", lambda threads: threads)        # however busy the machine
    monkeypatch.setattr(module, "ROW_PRODUCT_TERMS", 1 if form == "_by_row_products" else 10**9)
    if module is transpose_oracle:
        monkeypatch.setattr(module, "LOOP_CHANNELS", 0)
    used, real = [], getattr(module, form)
    monkeypatch.setattr(module, form, lambda *args: used.append(args[-PART[module]:]) or real(*args))
    one, two = module.reference(params, arrays), module.reference(params, arrays, threads=2)
    if module is conv_oracle:
        half = r.out_hw[0] // 2
        assert sorted(used[1:]) == [(0, 1, 0, 2, 0, half), (0, 1, 0, 2, half, r.out_hw[0])]   # cog = 2, rows halved
    else:
        assert sorted(used[1:]) == [(0, 1, 0, 1), (0, 1, 1, 2)]            # cog = 2: a channel per thread
    magnitude = module.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    loops_of = conv2d_loops if module is conv_oracle else conv2d_transpose_loops
    want = loops_of(arrays["x"], arrays["w"], arrays.get("b"), r)
    assert_within_ulps(one, want, magnitude, r.accumulation_length + 1)
    assert_within_ulps(two, want, magnitude, r.accumulation_length + 1)


@pytest.mark.parametrize("fields", [ROW_PRODUCT_CASES[1][2], {**MATRIX_CASES[0][2], "groups": 1}])
def test_one_image_of_one_group_shares_its_products_between_blas_threads(fields, monkeypatch):
    # One product per block: BLAS's own threads share it (on the free cores), and we run a single part.
    fields = {**fields, "input": [1, *fields["input"][1:]]}
    params, r = conv.Params(**fields).model_dump(), conv.resolve(conv.Params(**fields))
    arrays = operands(conv, params, 3, fields.get("bias", False))
    monkeypatch.setattr(conv_oracle, "free_cores", lambda threads: threads)
    limits, real = [], conv_oracle.blas_threads
    monkeypatch.setattr(conv_oracle, "blas_threads", lambda count: limits.append(count) or real(count))
    parts = []
    for form in ("_by_row_products", "_by_matrix_product"):
        real_form = getattr(conv_oracle, form)
        monkeypatch.setattr(conv_oracle, form, lambda *args, f=real_form: parts.append(args[-6:]) or f(*args))
    got = conv_oracle.reference(params, arrays, threads=2)
    assert limits == [2] and parts == [(0, 1, 0, fields["out_channels"], 0, r.out_hw[0])]
    magnitude = conv_oracle.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    assert_within_ulps(got, conv2d_loops(arrays["x"], arrays["w"], arrays.get("b"), r), magnitude,
                       r.accumulation_length + 1)


@pytest.mark.parametrize("sw, width", [(2, 8), (2, 9), (3, 10), (3, 11)])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_column_phases_hold_every_column_once(sw, width, x_dtype):
    x = np.random.default_rng(sw * width).standard_normal((2, 3, 4, width)).astype(x_dtype)
    phases = conv_oracle.column_phases(x, sw, np.float64)
    count = -(-width // sw)
    assert phases.shape == (2, 3, 4, sw, count) and phases.dtype == np.float64
    for p in range(sw):
        inside = len(range(p, width, sw))
        np.testing.assert_array_equal(phases[..., p, :inside], x[..., p::sw])    # exactly: float64 holds x
        assert not phases[..., p, inside:].any()


@pytest.mark.parametrize("sw, width", [(2, 8), (2, 9), (3, 11)])
@pytest.mark.parametrize("loops", ["compiled", "numpy"])
def test_strided_taps_gathered_from_column_phases(sw, width, loops, monkeypatch):
    # Every tap of a strided call gathered from x's column phases, in blocks of a few rows, from a float32 x
    # read as it is (the same sums as from x converted first) and a float64 one.
    if loops == "numpy":
        numpy_only(conv_oracle, monkeypatch)
    fields = dict(input=[3, 4, 7, width], out_channels=4, groups=2, kernel_size=[2, 3], stride=[2, sw],
                  dilation=[1, 2], padding=[1, 0, 2, 1], bias=True)
    params, r = conv.Params(**fields).model_dump(), conv.resolve(conv.Params(**fields))
    arrays = operands(conv, params, 8, True)
    arrays["x"] = arrays["x"].astype(np.float32)
    monkeypatch.setattr(conv_oracle, "BLOCK_BYTES", 2_000)
    got = conv_oracle.reference(params, arrays)
    np.testing.assert_array_equal(got, conv_oracle.reference(params, {**arrays, "x": arrays["x"].astype(np.float64)}))
    magnitude = conv_oracle.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    assert_within_ulps(got, conv2d_loops(arrays["x"].astype(np.float64), arrays["w"], arrays["b"], r), magnitude,
                       r.accumulation_length + 1)


# An input row's products, a group at a time: kh·kw·Cog·W·8 = 3·2·3·3·8 = 432 bytes; an image's 6 rows 2592.
@pytest.mark.parametrize("block_bytes, rows, images", [(100, 1, 1), (1_500, 3, 1), (6_000, 6, 2)],
                         ids=["one-row", "rows", "two-images"])
@pytest.mark.parametrize("adds", ["compiled", "numpy"])      # the taps' products added by either
@pytest.mark.parametrize("stride", [[2, 3], [2, 2]])        # [2, 2]: the compiled loop's output columns in pairs
def test_conv2d_transpose_blocks_give_the_same_sums(block_bytes, rows, images, adds, stride, monkeypatch):
    if adds == "numpy":
        numpy_only(transpose_oracle, monkeypatch)
    monkeypatch.setattr(transpose_oracle, "LOOP_CHANNELS", 0)      # BLAS products, not the grouped calls' loops
    made, real = [], transpose_oracle._blocks
    monkeypatch.setattr(transpose_oracle, "_blocks", lambda *args: made.append(real(*args)) or made[-1])
    rng = np.random.default_rng(2)
    params = transpose.Params(input=[5, 4, 6, 3], out_channels=6, groups=2, kernel_size=[3, 2], stride=stride,
                              dilation=[2, 1], padding=[1, 2, 0, 1], output_padding=1, bias=True).model_dump()
    r = transpose.resolve(transpose.Params(**params))
    arrays = {"x": rng.standard_normal((5, 4, 6, 3)), "w": rng.standard_normal((4, 3, 3, 2)),
              "b": rng.standard_normal(6)}
    old, transpose_oracle.BLOCK_BYTES = transpose_oracle.BLOCK_BYTES, block_bytes
    try:
        got = transpose_oracle.reference(params, arrays)
    finally:
        transpose_oracle.BLOCK_BYTES = old
    assert made and {(b - a, r1 - r0) for a, b, r0, r1 in made[0]} >= {(images, rows)}    # the blocks meant
    magnitude = transpose_oracle.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    want = conv2d_transpose_loops(arrays["x"], arrays["w"], arrays["b"], r)
    assert_within_ulps(got, want, magnitude, r.accumulation_length + 1)


# --------------------------------------------------------------------------- the compiled loops and threads


COMPILED_CASES = [
    # (oracle module, semantics module, fields): each takes the oracle's compiled loops in float64
    (conv_oracle, conv, dict(input=[3, 4, 9, 8], out_channels=8, groups=4, kernel_size=[3, 2], stride=[1, 2],
                             dilation=[2, 1], padding=[2, 0, 1, 3], bias=True)),                   # cig == 1
    (conv_oracle, conv, dict(input=[2, 3, 5, 6], out_channels=3, groups=3, kernel_size=3, stride=2,
                             padding="same", layout="NCHW")),                                      # depthwise
    (transpose_oracle, transpose, dict(input=[3, 4, 5, 3], out_channels=6, groups=2, kernel_size=[3, 2],
                                       stride=[2, 3], dilation=[2, 1], padding=[1, 2, 0, 1], output_padding=1,
                                       bias=True)),
    (transpose_oracle, transpose, dict(input=[2, 6, 4, 4], out_channels=3, groups=3, kernel_size=3, stride=3,
                                       padding="same", output_shape=[11, 12])),           # Cog == 1
    (avg_oracle, avg, dict(input=[3, 2, 9, 7], kernel_size=[3, 2], stride=[2, 3], padding=[1, 1, 0, 1],
                           ceil_mode=True, count_include_pad=True)),
]


@pytest.mark.parametrize("module, semantics, fields", COMPILED_CASES)
def test_compiled_loops_numpy_and_plain_loops_agree(module, semantics, fields, monkeypatch):
    params, r = semantics.Params(**fields).model_dump(), semantics.resolve(semantics.Params(**fields))
    arrays = operands(semantics, params, 3, fields.get("bias", False))
    if module is not avg_oracle:
        monkeypatch.setattr(module, "free_cores", lambda threads: threads)        # however busy the machine
    ran, real = [], module.compiled
    monkeypatch.setattr(module, "compiled", lambda loops: lambda *args: ran.append(args[-2:]) or real(loops)(*args))
    threads = (1,) if module is avg_oracle else (1, 2, 5)           # avg_pool2d's loops run on one thread
    compiled = {count: module.reference(params, arrays, **({"threads": count} if count > 1 else {}))
                for count in threads}
    assert ran                                                                                     # the loops ran
    if module is not avg_oracle:
        planes = ran[0][1]
        assert ran[0] == (0, planes) and (0, planes // 2) in ran and (planes // 2, planes) in ran
    if module is avg_oracle:
        want = pool_loops(arrays["x"], r, lambda inside, padded: average(inside, padded, True))
    elif module is conv_oracle:
        want = conv2d_loops(arrays["x"], arrays["w"], arrays.get("b"), r)
    else:
        want = conv2d_transpose_loops(arrays["x"], arrays["w"], arrays.get("b"), r)
    numpy_only(module, monkeypatch)
    by_numpy = module.reference(params, arrays)
    magnitude = module.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    for got in (compiled[1], by_numpy):
        assert_within_ulps(got, want, magnitude, r.accumulation_length + 1)
    # Threads split the output planes: each plane is summed the same way, so the numbers are the same.
    for count in threads:
        np.testing.assert_array_equal(compiled[count], compiled[1])


@pytest.mark.parametrize("load, runnable, ours, threads, free", [
    (4.1, 1, 1, 2, 2), (4.1, 2, 1, 2, 1), (4.1, 5, 1, 2, 1), (4.1, 1, 1, 8, 2), (4.1, 9, 1, 1, 1),
    (0.8, 3, 1, 2, 2),          # a task runnable at the instant of the call on an idle machine
    (1.2, 2, 2, 2, 2),          # our own pool thread, still finishing the previous call
    (1.95, 3, 1, 2, 1),         # busy on average and now: the other core is taken
])
def test_threads_only_where_cores_are_free(load, runnable, ours, threads, free, monkeypatch, tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(f"{load} 3.02 2.50 {runnable}/312 4242\n")
    monkeypatch.setattr(oracle_threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(oracle_threads, "_own_runnable", lambda: ours)
    monkeypatch.setattr(oracle_threads, "LOADAVG", str(loadavg))
    assert oracle_threads.free_cores(threads) == free


def test_compiled_loops_run_only_in_float64():
    params = conv.Params(input=[1, 2, 4, 4], out_channels=2, groups=2, kernel_size=2).model_dump()
    x, w = np.ones((1, 2, 4, 4)), np.full((2, 1, 2, 2), 0.1)
    assert conv_oracle.reference(params, {"x": x, "w": w}, dtype=np.float32).dtype == np.float32
    assert conv_oracle.reference(params, {"x": x, "w": w}).dtype == np.float64


@pytest.mark.parametrize("threads", [2, 3])
def test_numpy_paths_on_threads_give_the_same_sums(threads, monkeypatch):
    # Dense calls take BLAS (blocks of images on threads); the sums match the plain loops either way.
    conv_params = conv.Params(input=[5, 6, 7, 6], out_channels=4, kernel_size=3, stride=[1, 2], padding="same",
                              bias=True).model_dump()
    transpose_params = transpose.Params(input=[5, 6, 4, 5], out_channels=4, kernel_size=[2, 3], stride=2,
                                        padding=[1, 0, 0, 1], bias=True).model_dump()
    for module, semantics, params, loops in ((conv_oracle, conv, conv_params, conv2d_loops),
                                             (transpose_oracle, transpose, transpose_params,
                                              conv2d_transpose_loops)):
        r = semantics.resolve(semantics.Params(**params))
        arrays = operands(semantics, params, 5, True)
        monkeypatch.setattr(module, "free_cores", lambda threads: threads)        # however busy the machine
        magnitude = module.reference(params, {k: np.abs(v) for k, v in arrays.items()})
        old, module.BLOCK_BYTES = module.BLOCK_BYTES, 2_000        # several blocks per thread
        try:
            got = module.reference(params, arrays, threads=threads)
        finally:
            module.BLOCK_BYTES = old
        assert_within_ulps(got, loops(arrays["x"], arrays["w"], arrays["b"], r), magnitude,
                           r.accumulation_length + 1)


def test_an_oracle_loaded_by_path_leaves_numbas_cache_loadable_by_conform(tmp_path):
    """An oracle module loaded from its file under another name (a script, a notebook) compiles its loops
    without Numba's on-disk cache: an entry written there names that module, which no later process can
    import, and every run would then fail in the oracle (ModuleNotFoundError: '<dynamic>')."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ops = ("conv2d", "conv2d_transpose", "avg_pool2d")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(root)}
    by_path = ("import importlib.util\n"
               f"for op in {ops!r}:\n"
               f"    path = r'{root}/harness/ops/' + op + '/oracle.py'\n"
               "    spec = importlib.util.spec_from_file_location('copy_' + op, path)\n"
               "    module = importlib.util.module_from_spec(spec)\n"
               "    spec.loader.exec_module(module)\n"
               "    module.warm()\n")
    imported = ("import importlib\n"
                f"for op in {ops!r}:\n"
                "    importlib.import_module(f'harness.ops.{op}.oracle').warm()\n")
    for script in (by_path, imported):
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux thread affinity and two cores")
def test_pool_threads_stay_off_the_callers_core(monkeypatch):
    # The calling thread computes the first range; the pool's threads are woken on any core but its own, so a
    # woken one is not queued behind it there, and once running may go anywhere again (``_keep_off``).
    pinned, seen, keep_off = [], {}, oracle_threads._keep_off

    def recording(core):
        keep_off(core)
        pinned.append((core, [os.sched_getaffinity(tid) for tid in oracle_threads._POOL_THREADS]))
    monkeypatch.setattr(oracle_threads, "_keep_off", recording)

    def loops(lo, hi):
        seen[lo] = (threading.get_native_id(), os.sched_getaffinity(0))

    oracle_threads.on_threads(loops, 2, 2)            # starts the pool thread
    oracle_threads.on_threads(loops, 2, 2)
    (caller, _), (pool, running) = seen[0], seen[1]
    assert caller == threading.get_native_id() and pool != caller and pool in oracle_threads._POOL_THREADS
    core, waking = pinned[-1]
    assert core is not None and waking and all(cores == os.sched_getaffinity(0) - {core} for cores in waking)
    assert running == os.sched_getaffinity(0)


def test_every_thread_where_nothing_else_computes(monkeypatch, tmp_path):
    """``CONFORM_ALL_THREADS=1`` (``conform bench``'s workers, Note [Turns]): the cores count as free."""
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("1.95 3.02 2.50 3/312 4242\n")        # busy on average and now
    monkeypatch.setattr(oracle_threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(oracle_threads, "_own_runnable", lambda: 1)
    monkeypatch.setattr(oracle_threads, "LOADAVG", str(loadavg))
    assert oracle_threads.free_cores(2) == 1
    monkeypatch.setattr(oracle_threads, "_EVERY_THREAD", True)
    assert oracle_threads.free_cores(2) == 2 and oracle_threads.free_cores(1) == 1
