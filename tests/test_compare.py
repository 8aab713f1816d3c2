"""The comparator's judgement: tight enough to catch real bugs, quiet on correct results.

Perturbed outputs here are built from the oracle's own definition run in the
case dtype (what a correct float32/float16 kernel returns) and then broken the
way real adapters break: a one-pixel shift, a single perturbed element, a
dropped bias, a transposed kernel, the crop taken from the wrong side.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.compare import Reference, agreement, judge, metrics_for, suspect_oracle, tolerance_for, ulp
from harness.backends.base import Outcome
from harness.data import make_arrays
from harness.ops.conv2d_transpose import SPEC
from harness.ops.conv2d_transpose import semantics as op
from harness.ops.conv2d_transpose.oracle import reference

REALISTIC = [
    dict(input=[4, 32, 16, 16], out_channels=16, kernel_size=4, stride=2, padding=[1, 2, 2, 1], bias=True),
    dict(input=[2, 64, 8, 8], out_channels=32, kernel_size=3, stride=1, padding=[0, 1, 1, 0], bias=True),
    dict(input=[2, 16, 12, 10], out_channels=8, kernel_size=[5, 3], stride=[2, 3], padding=[2, 1, 0, 1],
         dilation=[1, 2], groups=2, bias=True),
]


def setup_case(fields: dict, dtype: str, seed: int = 0):
    params = op.Params.model_validate(fields)
    resolved = op.resolve(params)
    arrays = make_arrays(op.input_shapes(params), {"seed": seed}, dtype, SPEC.operands)
    p = params.model_dump()
    ref = Reference(output=reference(p, arrays), magnitude=reference(p, {k: np.abs(v) for k, v in arrays.items()}),
                    accumulation_length=resolved.accumulation_length, expected_shape=resolved.output_shape)
    return p, arrays, ref


HALF = ("float16", "bfloat16")


def computed(p, arrays, dtype):
    """What a correct kernel returns: half types accumulated in float32 and rounded, as oneDNN does."""
    from harness.data import round_to_dtype
    compute = "float32" if dtype in HALF else dtype
    return round_to_dtype(reference(p, arrays, np.dtype(compute)), dtype)


def verdict(output, ref, dtype):
    return judge(Outcome("ok", output=output), ref, expects_error=False, dtype=dtype,
                 accumulation="float32" if dtype in HALF else dtype)


@pytest.mark.parametrize("fields", REALISTIC)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_correct_results_pass_with_margin(fields, dtype):
    p, arrays, ref = setup_case(fields, dtype)
    j = verdict(computed(p, arrays, dtype), ref, dtype)
    assert j.verdict == "pass", j
    assert j.metrics["bound_ratio"] < 0.5


@pytest.mark.parametrize("fields", REALISTIC)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_one_pixel_shift_is_caught(fields, dtype):
    p, arrays, ref = setup_case(fields, dtype)
    y = computed(p, arrays, dtype)
    for axis in (2, 3):
        j = verdict(np.roll(y, 1, axis=axis), ref, dtype)
        assert j.verdict == "value_mismatch" and j.metrics["bound_ratio"] > 5, (axis, j.metrics)


@pytest.mark.parametrize("fields", REALISTIC)
def test_single_float32_element_perturbed_by_1e_3_is_caught(fields):
    p, arrays, ref = setup_case(fields, "float32")
    y = computed(p, arrays, "float32")
    # A typical element (median magnitude), not a near-zero one where 1e-3 relative is nothing.
    flat = np.abs(y).ravel()
    index = np.unravel_index(int(np.argsort(flat)[flat.size // 2]), y.shape)
    y[index] *= 1 + 1e-3
    j = verdict(y, ref, "float32")
    assert j.verdict == "value_mismatch", j.metrics
    assert j.metrics["worst_index"] == list(index)
    assert j.metrics["mismatch_fraction"] == pytest.approx(1 / y.size)


@pytest.mark.parametrize("fields", REALISTIC)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_dropped_bias_is_caught(fields, dtype):
    p, arrays, ref = setup_case(fields, dtype)
    j = verdict(computed(p, {k: v for k, v in arrays.items() if k != "b"}, dtype), ref, dtype)
    assert j.verdict == "value_mismatch" and j.metrics["bound_ratio"] > 1.5, j.metrics


@pytest.mark.parametrize("fields", REALISTIC)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_transposed_kernel_is_caught(fields, dtype):
    p, arrays, ref = setup_case(fields, dtype)
    kh, kw = p["kernel_size"]
    if kh == kw:   # spatially transposed kernel (kh <-> kw)
        broken = {**arrays, "w": arrays["w"].transpose(0, 1, 3, 2)}
    else:          # flipped kernel: the classic conv-vs-correlation bug
        broken = {**arrays, "w": arrays["w"][:, :, ::-1, ::-1].copy()}
    j = verdict(computed(p, broken, dtype), ref, dtype)
    assert j.verdict == "value_mismatch" and j.metrics["bound_ratio"] > 5


@pytest.mark.parametrize("fields", REALISTIC)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_swapped_crop_side_is_caught(fields, dtype):
    p, arrays, ref = setup_case(fields, dtype)
    t, b, l, r = p["padding"]
    assert (t, l) != (b, r)
    swapped = {**p, "padding": [b, t, r, l]}
    j = verdict(computed(swapped, arrays, dtype), ref, dtype)
    assert j.verdict == "value_mismatch" and j.metrics["bound_ratio"] > 5


def test_nonfinite_values_must_sit_at_the_same_positions():
    p, arrays, ref = setup_case(REALISTIC[0], "float32")
    ref.output = ref.output.copy()
    ref.output[0, 0, 0, 0] = np.nan
    ref.output[0, 0, 0, 1] = np.inf
    y = computed(p, arrays, "float32")
    y[0, 0, 0, 0], y[0, 0, 0, 1] = np.nan, np.inf
    assert verdict(y, ref, "float32").verdict == "pass"
    y[0, 0, 0, 1] = -np.inf
    j = verdict(y, ref, "float32")
    assert j.verdict == "value_mismatch" and j.metrics["nonfinite_mismatches"] == 1
    y[0, 0, 0, 1] = np.inf
    y[0, 0, 0, 2] = np.nan
    assert verdict(y, ref, "float32").metrics["nonfinite_mismatches"] == 1


def test_signed_zero_is_ignored_and_zero_bound_requires_exact_zero():
    ref = Reference(output=np.zeros((1, 1, 2, 2)), magnitude=np.zeros((1, 1, 2, 2)), accumulation_length=4,
                    expected_shape=(1, 1, 2, 2))
    assert verdict(-np.zeros((1, 1, 2, 2)), ref, "float32").verdict == "pass"
    y = np.zeros((1, 1, 2, 2))
    y[0, 0, 1, 1] = 1e-30
    assert verdict(y, ref, "float32").verdict == "value_mismatch"


def test_tolerance_override_replaces_the_model():
    p, arrays, ref = setup_case(REALISTIC[0], "float32")
    y = computed(p, arrays, "float32") * (1 + 1e-4)
    assert verdict(y, ref, "float32").verdict == "value_mismatch"
    j = judge(Outcome("ok", output=y), ref, expects_error=False, dtype="float32",
              tolerance_override={"rtol": 1e-3, "atol": 1e-3})
    assert j.verdict == "pass" and j.tolerance["model"] == "override"


def test_metrics_ulp_and_relative_error():
    ref = Reference(output=np.array([[[[1.0, 2.0]]]]), magnitude=np.array([[[[1.0, 2.0]]]]), expected_shape=(1, 1, 1, 2))
    tol = tolerance_for("float32", 1)
    m = metrics_for(np.array([[[[1.0 + 2 ** -23, 2.0]]]]), ref, tol, "float32")
    assert m["max_ulp"] == pytest.approx(1.0)
    assert m["max_rel_err"] == pytest.approx(2 ** -23)
    assert ulp(np.array([1.0]), "bfloat16")[0] == 2 ** -7
    assert ulp(np.array([1.0]), "float16")[0] == 2 ** -10


def test_shape_and_error_verdicts():
    ref = Reference(output=np.zeros((1, 1, 2, 2)), magnitude=np.ones((1, 1, 2, 2)), expected_shape=(1, 1, 2, 2))
    assert verdict(np.zeros((1, 1, 2, 3)), ref, "float32").verdict == "shape_mismatch"
    err = Outcome("error", error_type="ValueError", error_message="bad")
    assert judge(err, ref, expects_error=False, dtype="float32").verdict == "unexpected_error"
    assert judge(err, ref, expects_error=True, dtype="float32").verdict == "pass"
    ok = Outcome("ok", output=np.zeros((1, 1, 2, 2)))
    assert judge(ok, ref, expects_error=True, dtype="float32").verdict == "missing_error"
    assert judge(Outcome("unsupported", detail="no bf16"), ref, expects_error=False,
                 dtype="float32").verdict == "unsupported"


def test_pairwise_agreement_and_suspect_oracle():
    p, arrays, ref = setup_case(REALISTIC[0], "float32")
    good = computed(p, arrays, "float32")
    shifted = np.roll(good, 1, axis=2)
    partners = agreement({"a": good, "b": good.copy(), "c": shifted}, ref, "float32")
    assert partners["a"] == ["oracle", "b"] and partners["c"] == []
    assert not suspect_oracle(partners)
    # Two independent frameworks agree with each other and not with the oracle: the oracle is suspect.
    wrong_oracle = Reference(output=shifted, magnitude=ref.magnitude, accumulation_length=ref.accumulation_length,
                             expected_shape=ref.expected_shape)
    partners = agreement({"tf.nn": good, "torch.functional": good.copy(), "numpy": shifted}, wrong_oracle, "float32")
    assert partners["tf.nn"] == ["torch.functional"]
    assert suspect_oracle(partners)
    # The oracle's own NumPy run agreeing with it does not out-vote two frameworks.
    assert "oracle" in partners["numpy"]


def test_agreement_requires_the_same_nonfinite_values():
    ref = Reference(output=np.array([[[[1.0, np.inf]]]]), magnitude=np.ones((1, 1, 1, 2)),
                    expected_shape=(1, 1, 1, 2))
    outputs = {"tf.nn": np.array([[[[1.0, np.inf]]]]), "torch.functional": np.array([[[[1.0, -np.inf]]]]),
               "mindspore.nn": np.array([[[[1.0, np.nan]]]])}
    partners = agreement(outputs, ref, "float32")
    assert partners == {"mindspore.nn": [], "tf.nn": ["oracle"], "torch.functional": []}
    assert not suspect_oracle(partners)


# ---- underflow (Note [Tolerance model]): what bounds a subnormal result, and what it must not hide

F16_SPACING = 2.0 ** -24       # subnormal spacing of float16 = ulp of its smallest normal 2**-14


def single_product(value: float) -> Reference:
    """One output element that is a single product (K = 1, no bias): B = |y|."""
    a = np.array([[[[value]]]])
    return Reference(output=a, magnitude=np.abs(a), accumulation_length=1, expected_shape=(1, 1, 1, 1))


def test_underflow_term_is_what_bounds_a_correctly_rounded_subnormal_result():
    # The issue's element: x·w = 2.21e-6 (w = -1.25e-6 is itself subnormal in float16); float16's
    # spacing there is 6e-8, so the correctly rounded result errs by up to 3e-8 while the relative
    # model allows u·(|y| + B) = 2.2e-9.
    ref = single_product(2.2100284695625305e-06)
    rounded = np.float16(2.2100284695625305e-06).astype(np.float64).reshape(1, 1, 1, 1)
    tol = tolerance_for("float16", 1, accumulation="float32")
    assert verdict(rounded, ref, "float16").verdict == "pass"
    without = {k: v for k, v in tol.items() if k not in ("smallest_normal", "underflow")}
    assert metrics_for(rounded, ref, without, "float16")["bound_ratio"] > 1   # the old model's false alarm
    # Every value in float16's subnormal range, correctly rounded, passes.
    y = np.linspace(1e-9, 2.0 ** -14, 997).reshape(1, 1, 1, -1)
    ref = Reference(output=y, magnitude=y, accumulation_length=1, expected_shape=y.shape)
    assert verdict(y.astype(np.float16).astype(np.float64), ref, "float16").verdict == "pass"


def test_underflow_term_does_not_hide_an_error_of_more_than_one_ulp_of_the_smallest_normal():
    # Below λ the allowance is u·λ per rounding into float16, two roundings: one spacing in total.
    y = 2.2100284695625305e-06
    off = np.array([[[[float(np.float16(y)) + 2 * F16_SPACING]]]])
    assert verdict(off, single_product(y), "float16").verdict == "value_mismatch"
    # At normal values the bound is the relative model exactly (the float32 products' underflow
    # allowance K·u_acc·λ_acc is below 1e-44), so a two-ulp error just above λ still fails.
    y = 3 * 2.0 ** -14
    ref = single_product(y)
    tol = tolerance_for("float16", 1, accumulation="float32")
    from harness.compare import bound
    relative = tol["unit_roundoff"] * 2 * y + tol["accumulation_factor"] * y
    assert bound(tol, ref)[0, 0, 0, 0] - relative < 1e-44
    two_ulps = np.array([[[[y + 2 * ulp(np.array([y]), "float16")[0]]]]])
    assert verdict(two_ulps, ref, "float16").verdict == "value_mismatch"


def test_underflow_term_keeps_exact_zero_where_no_product_is_nonzero():
    ref = Reference(output=np.zeros((1, 1, 1, 2)), magnitude=np.array([[[[0.0, 1e-7]]]]),
                    accumulation_length=9, expected_shape=(1, 1, 1, 2))
    y = np.array([[[[F16_SPACING, 0.0]]]])
    assert verdict(y, ref, "float16").verdict == "value_mismatch"      # B = 0: must be exactly 0
    assert verdict(y[..., ::-1].copy(), ref, "float16").verdict == "pass"   # B > 0: one spacing allowed


def test_per_call_accumulation_overrides_the_backend_declaration():
    from harness.backends.base import Backend

    class Declared(Backend):
        id = "declared"
        accumulation = {"float16": "float32"}

    assert Declared.accumulation_for("float16") == "float32"
    assert Declared.accumulation_for("bfloat16") == "bfloat16"     # undeclared: the case dtype
    assert Declared.accumulation_for("float16", Outcome("ok", accumulation="float16")) == "float16"
    # The judge widens the bound accordingly (case-dtype accumulation: u instead of u_acc).
    p, arrays, ref = setup_case(REALISTIC[0], "float16")
    y = computed(p, arrays, "float16")
    tight = judge(Outcome("ok", output=y), ref, expects_error=False, dtype="float16", accumulation="float32")
    loose = judge(Outcome("ok", output=y), ref, expects_error=False, dtype="float16", accumulation="float16")
    assert loose.tolerance["accumulation"] == "float16"
    assert loose.metrics["bound_ratio"] < tight.metrics["bound_ratio"]
