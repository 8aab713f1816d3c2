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
