"""Input data: ``harness.data.round_to_dtype`` and ``harness.data.make_arrays``."""

from __future__ import annotations

import numpy as np
import pytest

from harness import ops
from harness.data import DTYPES, FILLS, make_arrays, round_to_dtype

BF16_MAX = float.fromhex("0x1.fep127")


def f32_from_bits(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32).astype(np.float64)


def same(a, b) -> bool:
    """Bit-for-bit equal as float64, NaN equal NaN, -0 distinct from +0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all((a.view(np.uint64) == b.view(np.uint64))
                                              | (np.isnan(a) & np.isnan(b))))


def bf16_probe_values() -> np.ndarray:
    rng = np.random.default_rng(123)
    parts = [
        rng.standard_normal(2000) * 10.0 ** rng.integers(-40, 38, 2000),   # any float64
        rng.standard_normal(2000),
    ]
    bits = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    bits = bits[(bits & 0x7F800000) != 0x7F800000]                          # finite float32 only
    for low in (0x8000, 0x7FFF, 0x8001, 0x0000, 0xFFFF):                    # ties and their neighbours
        parts.append(f32_from_bits((bits & 0xFFFF0000) | low))
    parts.append(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, BF16_MAX, -BF16_MAX,
                           float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny),
                           float.fromhex("0x1p-149"), float.fromhex("0x1p-133"), 1e39, -1e39, 1e-50]))
    return np.concatenate(parts)


# --------------------------------------------------------------------------- round_to_dtype


@pytest.mark.parametrize("value, expected", [
    (1.0 + 2**-8, 1.0),                       # tie between 1 and 1+2^-7: to even (1.0)
    (1.0 + 3 * 2**-8, 1.0 + 2**-6),           # tie between 1+2^-7 (odd) and 1+2^-6 (even)
    (-(1.0 + 2**-8), -1.0),
    (1.0 + 2**-8 + 2**-20, 1.0 + 2**-7),      # just above the tie
    (1.0 + 2**-8 - 2**-20, 1.0),              # just below the tie
    (3.0, 3.0),
    (0.1, 0.10009765625),                     # 0x3DCD
    (BF16_MAX, BF16_MAX),
    (float.fromhex("0x1.ff0p127"), np.inf),   # halfway above the largest bfloat16: to even = inf
    (-np.inf, -np.inf),
])
def test_bfloat16_by_hand(value, expected):
    out = round_to_dtype(np.array([value]), "bfloat16")
    assert out.dtype == np.float64
    assert same(out, [expected]), (value, out[0], expected)


def test_bfloat16_keeps_nan_and_signed_zero():
    out = round_to_dtype(np.array([np.nan, -0.0, 0.0]), "bfloat16")
    assert np.isnan(out[0])
    assert np.signbit(out[1]) and not np.signbit(out[2]) and out[1] == 0 and out[2] == 0


def test_bfloat16_results_have_8_significant_bits():
    values = round_to_dtype(np.random.default_rng(0).standard_normal(10000), "bfloat16")
    bits = values.astype(np.float32).view(np.uint32)
    assert np.all(bits & 0xFFFF == 0)
    assert same(round_to_dtype(values, "bfloat16"), values)       # idempotent


def test_bfloat16_agrees_with_torch():
    torch = pytest.importorskip("torch")
    values = bf16_probe_values()
    with np.errstate(over="ignore"):
        ours = round_to_dtype(values, "bfloat16")
    theirs = torch.tensor(values, dtype=torch.float64).to(torch.bfloat16).to(torch.float64).numpy()
    bad = np.flatnonzero(~((ours.view(np.uint64) == theirs.view(np.uint64)) | (np.isnan(ours) & np.isnan(theirs))))
    assert bad.size == 0, [(values[i].hex(), ours[i], theirs[i]) for i in bad[:10]]


def test_bfloat16_agrees_with_torch_on_float32_inputs():
    """Values already float32 (no double rounding involved): the conversion every framework does."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    bits = rng.integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32)
    bits = bits[(bits & 0x7F800000) != 0x7F800000]
    bits[: bits.size // 2] = (bits[: bits.size // 2] & 0xFFFF0000) | 0x8000      # half of them exact ties
    values32 = bits.view(np.float32)
    ours = round_to_dtype(values32.astype(np.float64), "bfloat16")
    theirs = torch.from_numpy(values32.copy()).to(torch.bfloat16).to(torch.float64).numpy()
    assert same(ours, theirs)


def test_float16_matches_numpy_and_torch():
    values = bf16_probe_values()
    values = values[np.isfinite(values) | np.isinf(values)]
    with np.errstate(over="ignore"):
        ours = round_to_dtype(values, "float16")
        expected = values.astype(np.float16).astype(np.float64)
    assert ours.dtype == np.float64
    assert same(ours, expected)
    torch = pytest.importorskip("torch")
    theirs = torch.tensor(values, dtype=torch.float64).to(torch.float16).to(torch.float64).numpy()
    assert same(ours, theirs)


@pytest.mark.parametrize("value, expected", [
    (1.0 + 2**-11, 1.0),                      # tie: to even
    (1.0 + 3 * 2**-11, 1.0 + 2**-9),
    (65504.0, 65504.0),
    (65520.0, np.inf),                        # halfway above the largest float16
    (2.0**-24, 2.0**-24),                     # smallest subnormal
    (2.0**-25, 0.0),                          # tie with 0: to even
])
def test_float16_by_hand(value, expected):
    with np.errstate(over="ignore"):
        assert same(round_to_dtype(np.array([value]), "float16"), [expected])


def test_float32_and_float64():
    values = np.array([0.1, 1.0 + 2**-30, 1e-320])
    assert same(round_to_dtype(values, "float32"), values.astype(np.float32).astype(np.float64))
    out = round_to_dtype(values, "float64")
    assert same(out, values)
    out[0] = 5.0
    assert values[0] == 0.1                   # a copy, not a view of the caller's array


def test_round_to_dtype_accepts_lists_and_keeps_shape():
    out = round_to_dtype([[1.0 + 2**-8, 2.0], [3.0, 4.0]], "bfloat16")
    assert out.shape == (2, 2) and out.dtype == np.float64
    assert out[0, 0] == 1.0


# --------------------------------------------------------------------------- make_arrays

SHAPES = {"x": (2, 3, 4, 5), "w": (3, 2, 3, 3)}
OPERANDS = ops.get("conv2d_transpose").operands   # x, w and the bias b (random, never zero, by default)


def test_make_arrays_shapes_and_dtype():
    arrays = make_arrays({**SHAPES, "b": (2,)}, {}, "float32")
    assert set(arrays) == {"x", "w", "b"}
    for name, shape in {**SHAPES, "b": (2,)}.items():
        assert arrays[name].shape == shape and arrays[name].dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
def test_make_arrays_is_deterministic_and_rounded(dtype):
    data = {"x": "normal", "w": "uniform", "seed": 42}
    a = make_arrays({**SHAPES, "b": (2,)}, data, dtype)
    b = make_arrays({**SHAPES, "b": (2,)}, dict(data), dtype)
    for name in a:
        assert same(a[name], b[name])
        assert same(round_to_dtype(a[name], dtype), a[name])       # exactly representable
    if dtype != "float64":
        hi = make_arrays(SHAPES, data, "float64")
        assert not same(hi["x"], a["x"])                           # really rounded


def test_make_arrays_seed_changes_values():
    a = make_arrays(SHAPES, {"seed": 0}, "float32")
    b = make_arrays(SHAPES, {"seed": 1}, "float32")
    assert np.mean(a["x"] == b["x"]) < 0.01
    assert not np.array_equal(a["w"], b["w"])
    assert same(make_arrays(SHAPES, {}, "float32")["x"], a["x"])   # seed defaults to 0


def test_operands_have_independent_streams():
    base = make_arrays(SHAPES, {"seed": 3}, "float32")
    with_bias = make_arrays({**SHAPES, "b": (2,)}, {"seed": 3}, "float32")
    assert same(base["x"], with_bias["x"]) and same(base["w"], with_bias["w"])
    other_w = make_arrays({"x": SHAPES["x"], "w": (3, 4, 1, 2)}, {"seed": 3, "w": "uniform"}, "float32")
    assert same(base["x"], other_w["x"])
    reordered = make_arrays({"w": SHAPES["w"], "x": SHAPES["x"]}, {"seed": 3}, "float32")
    assert same(base["x"], reordered["x"]) and same(base["w"], reordered["w"])
    assert not np.array_equal(base["x"].ravel()[:10], base["w"].ravel()[:10])


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_bias_is_never_zero(dtype):
    for seed in range(5):
        b = make_arrays({"b": (257,)}, {"seed": seed}, dtype, OPERANDS)["b"]
        assert np.all(b != 0)
        assert np.all(np.abs(b) >= 0.25) and np.all(np.abs(b) <= 1.0)
        assert np.any(b > 0) and np.any(b < 0)


def test_bias_with_the_case_data_spec():
    """The runner passes the operator's data model dumped, where an unset bias fill is ``b: None``."""
    from harness.cases import data_model

    DataSpec = data_model("conv2d_transpose")
    data = DataSpec(seed=4).model_dump()
    assert data["b"] is None
    b = make_arrays({"b": (8,)}, data, "float32", OPERANDS)["b"]
    assert np.all(np.abs(b) >= 0.25)
    assert same(b, make_arrays({"b": (8,)}, {"seed": 4}, "float32", OPERANDS)["b"])
    ones = make_arrays({"b": (8,)}, DataSpec(b="ones").model_dump(), "float32", OPERANDS)["b"]
    assert same(ones, np.ones(8))


def test_fill_ones():
    a = make_arrays(SHAPES, {"x": "ones", "w": "ones"}, "bfloat16")
    assert np.all(a["x"] == 1.0) and np.all(a["w"] == 1.0)


def test_fill_uniform_and_normal_ranges():
    a = make_arrays({"x": (10000,), "w": (10000,)}, {"x": "uniform", "w": "normal"}, "float64")
    assert np.all(np.abs(a["x"]) <= 1.0) and a["x"].min() < -0.9 and a["x"].max() > 0.9
    assert np.abs(a["w"]).max() > 2.0 and abs(a["w"].mean()) < 0.1 and 0.9 < a["w"].std() < 1.1


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_fill_arange_is_exact_and_position_dependent(dtype):
    shape = (2, 3, 4, 5)
    x = make_arrays({"x": shape}, {"x": "arange"}, dtype)["x"]
    expected = ((np.arange(120) % 17 - 8) / 8.0).reshape(shape)
    assert same(x, expected)                                       # no rounding happened
    assert set(np.unique(x)) <= {k / 8 for k in range(-8, 9)}
    assert not np.array_equal(x, x.transpose(0, 1, 3, 2).reshape(shape))
    assert not np.array_equal(x[0, 0], x[0, 1])


def test_fill_impulse_position():
    x = make_arrays({"x": (2, 3, 4, 5)}, {"x": "impulse"}, "bfloat16")["x"]
    assert np.sum(x) == 6                                         # one per (n, c) plane
    assert np.all(x[:, :, 2, 2] == 1.0)                           # centre: (4 // 2, 5 // 2)
    x[:, :, 2, 2] = 0
    assert not np.any(x)
    w = make_arrays({"w": (1, 1, 3, 3)}, {"w": "impulse"}, "float32")["w"]
    assert same(w[0, 0], [[0, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_fill_on_empty_shape():
    x = make_arrays({"x": (0, 3, 4, 4)}, {"x": "impulse"}, "float32")["x"]
    assert x.shape == (0, 3, 4, 4)


def test_unknown_fill_is_rejected():
    with pytest.raises(ValueError, match="unknown fill 'zeros'"):
        make_arrays({"x": (2,)}, {"x": "zeros"}, "float32")


def test_every_listed_fill_works():
    for fill in FILLS:
        x = make_arrays({"x": (1, 2, 3, 3)}, {"x": fill}, "float16")["x"]
        assert x.shape == (1, 2, 3, 3) and np.all(np.isfinite(x))
