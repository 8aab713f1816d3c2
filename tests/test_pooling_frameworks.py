"""The pooling oracles against the real frameworks, in float64: PyTorch in process, TensorFlow in a subprocess.

PyTorch is asked only what it accepts (symmetric padding ≤ K/2, which is its
restriction, not a canonical rule); TensorFlow only SAME/VALID (and explicit
padding < window for max pooling), with ``count_include_pad`` false and no
``ceil_mode``, which it does not have. Both must agree with the oracles
exactly for max pooling and to float64 rounding for the average, and their
shapes with the semantics' ``resolve``.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from helpers import run_tensorflow
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harness.compare import Reference, bound, tolerance_for
from harness.ops.avg_pool2d import oracle as avg_oracle
from harness.ops.avg_pool2d import semantics as avg
from harness.ops.max_pool2d import oracle as max_oracle
from harness.ops.max_pool2d import semantics as mx

torch = pytest.importorskip("torch")
F = torch.nn.functional

_calls = st.fixed_dictionaries({
    "n": st.integers(1, 2), "c": st.integers(1, 3), "h": st.integers(1, 10), "w": st.integers(1, 10),
    "k": st.tuples(st.integers(1, 4), st.integers(1, 4)), "s": st.tuples(st.integers(1, 4), st.integers(1, 4)),
    "d": st.tuples(st.integers(1, 3), st.integers(1, 3)), "pad": st.tuples(st.integers(0, 4), st.integers(0, 4)),
    "ceil_mode": st.booleans(), "count_include_pad": st.booleans(), "seed": st.integers(0, 2**16),
})


def _fields(call, dilation=(1, 1)):
    """Canonical fields of a PyTorch-expressible call, or None (hypothesis then draws again)."""
    k, (ph, pw) = call["k"], call["pad"]
    if ph > k[0] // 2 or pw > k[1] // 2:      # torch 2.13 checks the kernel; newer sources the effective kernel
        return None
    return {"input": [call["n"], call["c"], call["h"], call["w"]], "kernel_size": list(k),
            "stride": list(call["s"]), "padding": [ph, ph, pw, pw], "ceil_mode": call["ceil_mode"]}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_calls)
def test_avg_pool2d_agrees_with_pytorch(call):
    fields = _fields(call)
    assume(fields is not None)
    params = avg.Params(**fields, count_include_pad=call["count_include_pad"])
    try:
        resolved = avg.resolve(params)
    except avg.InvalidCall:
        with pytest.raises(RuntimeError):       # PyTorch rejects what the semantics rejects
            F.avg_pool2d(torch.zeros(params.input, dtype=torch.float64), call["k"], call["s"], call["pad"],
                         call["ceil_mode"], call["count_include_pad"])
        return
    x = np.random.default_rng(call["seed"]).standard_normal(params.input)
    theirs = F.avg_pool2d(torch.from_numpy(x), call["k"], call["s"], call["pad"], call["ceil_mode"],
                          call["count_include_pad"]).numpy()
    ours = avg_oracle.reference(params.model_dump(), {"x": x})
    assert ours.shape == theirs.shape == resolved.output_shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-14)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_calls)
def test_max_pool2d_agrees_with_pytorch(call):
    fields = _fields(call, call["d"])
    assume(fields is not None)
    params = mx.Params(**fields, dilation=list(call["d"]))
    x = np.random.default_rng(call["seed"]).standard_normal(params.input)
    args = dict(kernel_size=call["k"], stride=call["s"], padding=call["pad"], dilation=call["d"],
                ceil_mode=call["ceil_mode"])
    try:
        resolved = mx.resolve(params)
    except mx.InvalidCall:
        with pytest.raises(RuntimeError):
            F.max_pool2d(torch.from_numpy(x), **args)
        return
    theirs = F.max_pool2d(torch.from_numpy(x), **args).numpy()
    ours = max_oracle.reference(params.model_dump(), {"x": x})
    assert ours.shape == theirs.shape == resolved.output_shape
    np.testing.assert_array_equal(ours, theirs)       # exact, −inf included


_TF = textwrap.dedent("""
    import json, sys
    import numpy as np
    try:
        import tensorflow as tf
    except Exception as exc:
        print(json.dumps({"skip": repr(exc)})); sys.exit(0)
    from harness.ops.avg_pool2d.oracle import reference as avg_reference
    from harness.ops.max_pool2d.oracle import reference as max_reference
    rng = np.random.default_rng(7)
    rows = []
    configs = [(h, w, k, s, padding) for h, w in [(5, 5), (6, 7), (1, 4), (9, 3)]
               for k, s in [([2, 2], [2, 2]), ([3, 3], [2, 2]), ([4, 2], [1, 3]), ([1, 3], [3, 1]), ([3, 3], [1, 1])]
               for padding in ["same", "valid"]]
    configs += [(6, 7, [3, 3], [2, 2], [1, 2, 0, 2]), (5, 5, [4, 3], [1, 2], [3, 0, 2, 1])]   # explicit, max only
    for h, w, k, s, padding in configs:
        if padding == "valid" and (k[0] > h or k[1] > w):
            continue
        x = rng.standard_normal((2, 3, h, w))
        params = {"input": [2, h, w, 3], "layout": "NHWC", "kernel_size": k, "stride": s, "padding": padding}
        tf_pad = padding.upper() if isinstance(padding, str) else [[0, 0], padding[0:2], padding[2:4], [0, 0]]
        x_tf = tf.constant(x.transpose(0, 2, 3, 1))
        ops = [("max", tf.nn.max_pool2d, max_reference)]
        if isinstance(padding, str):
            ops.append(("avg", tf.nn.avg_pool2d, avg_reference))
        for name, op, reference in ops:
            theirs = op(x_tf, k, s, tf_pad).numpy()
            ours = reference(params, {"x": x})
            rows.append({"case": repr((name, h, w, k, s, padding)), "params": params, "op": name,
                         "ours": list(ours.shape), "theirs": list(theirs.shape),
                         "err": float(np.max(np.abs(ours - theirs))) if ours.shape == theirs.shape else None})
    # VALID with a window one row larger than the input (K − H < s): TensorFlow truncates (H − K + s)/s to 0
    empty = tf.nn.avg_pool2d(tf.zeros((1, 5, 5, 1), tf.float64), [6, 6], [1, 1], "VALID")
    print(json.dumps({"rows": rows, "valid_past_input": list(empty.shape)}))
""")


def test_pooling_agrees_with_tensorflow_same_valid_explicit():
    """SAME's odd padding at the bottom/right, SAME's average over real elements only, VALID, NHWC natively."""
    result = run_tensorflow(_TF)
    assert len(result["rows"]) > 60
    for row in result["rows"]:
        module = avg if row["op"] == "avg" else mx
        resolved = module.resolve(module.Params(**row["params"]))
        assert row["ours"] == row["theirs"] == list(resolved.output_shape), row
        assert row["err"] <= (1e-15 if row["op"] == "avg" else 0.0), row
    # A divergence the wiring step registers: TensorFlow returns an empty output where no window fits.
    with pytest.raises(avg.InvalidCall):
        avg.resolve(avg.Params(input=[1, 5, 5, 1], layout="NHWC", kernel_size=6, stride=1, padding="valid"))
    assert result["valid_past_input"] == [1, 0, 0, 1]


# --- the error bound (Note [Average pooling], Note [Max pooling]) ---------------------------------------------------

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
_NUMPY = {"float16": np.float16, "float32": np.float32}        # NumPy has no bfloat16


def _avg_case(dtype, kernel, include, seed=3):
    from harness.data import round_to_dtype
    params = avg.Params(input=[2, 8, 38, 36], kernel_size=kernel, stride=[kernel // 2 + 1, kernel // 3 + 1],
                        padding=[kernel // 2] * 4, ceil_mode=True, count_include_pad=include)
    x = round_to_dtype(np.random.default_rng(seed).standard_normal(params.input) + 0.5, dtype)
    reference = Reference(avg_oracle.reference(params.model_dump(), {"x": x}),
                          avg_oracle.magnitude(params.model_dump(), {"x": x}), avg.resolve(params).accumulation_length)
    return params, x, reference


def _torch_avg(params, x, dtype):
    k, s, p = params.kernel_size, params.stride, params.padding
    y = F.avg_pool2d(torch.from_numpy(x).to(TORCH_DTYPES[dtype]), k, s, (p[0], p[2]), params.ceil_mode,
                     params.count_include_pad)
    return y.to(torch.float64).numpy()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("kernel", [3, 17])       # 17×17 = 289 terms: past bfloat16's exact counts
def test_low_precision_averages_are_within_the_bound(dtype, kernel):
    for include in (False, True):
        params, x, ref = _avg_case(dtype, kernel, include)
        limit = bound(tolerance_for(dtype, ref.accumulation_length), ref)
        answers = {"torch": _torch_avg(params, x, dtype)}
        if dtype in _NUMPY:           # the numpy backend: the oracle's definition run in the case dtype
            answers["numpy"] = avg_oracle.reference(params.model_dump(), {"x": x}, _NUMPY[dtype])
        for name, y in answers.items():
            ratio = np.max(np.abs(y - ref.output) / limit)
            assert ratio <= 1, (name, dtype, kernel, include, ratio)




def test_the_bound_catches_a_wrong_divisor_or_a_shift():
    """Tightness in float16, the loosest dtype: wrong count_include_pad, wrong ceil_mode, a shifted window.

    Measured: torch's float16 answers use at most 0.07 of the bound, float32 0.2; a wrong divisor ~110
    bounds, a one-row shift ~2500.
    """
    dtype = "float16"
    params, x, ref = _avg_case(dtype, 3, False)
    limit = bound(tolerance_for(dtype, ref.accumulation_length), ref)
    wrong_count = _torch_avg(params.model_copy(update={"count_include_pad": True}), x, dtype)
    assert np.max(np.abs(wrong_count - ref.output) / limit) > 10
    shifted = avg_oracle.reference(params.model_dump(), {"x": np.roll(x, 1, axis=2)})
    assert np.max(np.abs(shifted - ref.output) / limit) > 10
    assert _torch_avg(params.model_copy(update={"ceil_mode": False}), x, dtype).shape != ref.output.shape


def test_low_precision_maxima_are_exact():
    from harness.data import round_to_dtype
    for dtype, torch_dtype in TORCH_DTYPES.items():
        params = mx.Params(input=[2, 4, 11, 12], kernel_size=3, stride=2, padding=1, dilation=[1, 2], ceil_mode=True)
        x = round_to_dtype(np.random.default_rng(4).standard_normal(params.input), dtype)
        ours = max_oracle.reference(params.model_dump(), {"x": x})
        theirs = F.max_pool2d(torch.from_numpy(x).to(torch_dtype), 3, 2, 1, [1, 2], True).to(torch.float64).numpy()
        np.testing.assert_array_equal(theirs, ours)
        assert not max_oracle.magnitude(params.model_dump(), {"x": x}).any()   # bound 0: any difference fails
