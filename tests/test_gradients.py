"""The float64 gradient oracles (``harness/ops/<op>/gradient.py``): right, and tight enough to matter.

* every ``vjp`` matches a central finite difference of ``<dy, oracle(...)>`` in float64 on small cases that
  cover the parameter space (strides, dilations, groups, every padding form, output_padding / output_shape
  crops, Keras' size rule, ceil_mode, count_include_pad, both layouts); max pooling on distinct values;
* the linear operators satisfy the adjoint identity ``<dy, f(v)> = <vjp(dy), v>`` with the forward oracle;
* hand cases: a one-element convolution, a max-pool tie going to the first maximum;
* tightness: a gradient with one kernel tap dropped, the bias gradient summed over the wrong axis and
  max-pool ties routed to the last maximum each fail those checks.

Cases are validated through each operator's semantics (``resolve``) so none is an invalid call.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import ops
from harness.ops.avg_pool2d import gradient as avg_gradient
from harness.ops.conv2d import gradient as conv_gradient
from harness.ops.conv2d_transpose import gradient as transpose_gradient
from harness.ops.max_pool2d import gradient as max_gradient

VJP = {"conv2d_transpose": transpose_gradient.vjp, "conv2d": conv_gradient.vjp,
       "avg_pool2d": avg_gradient.vjp, "max_pool2d": max_gradient.vjp}

CASES = {
    "conv2d_transpose": [
        dict(input=[1, 1, 1, 1], out_channels=1, kernel_size=1),
        dict(input=[1, 2, 4, 4], out_channels=3, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True),
        dict(input=[2, 4, 3, 2], out_channels=2, kernel_size=[2, 3], stride=[1, 2], dilation=[2, 1], groups=2,
             padding=[0, 1, 1, 0], bias=True),
        dict(input=[1, 3, 3, 2], layout="NHWC", out_channels=2, kernel_size=3, stride=2, padding="same", bias=True),
        dict(input=[1, 2, 3, 3], out_channels=2, kernel_size=4, stride=3, padding="same_lower"),
        dict(input=[1, 2, 3, 3], out_channels=2, kernel_size=3, stride=2, padding="valid", output_padding=1,
             size_rule="keras", bias=True),
        dict(input=[1, 2, 3, 3], out_channels=2, kernel_size=2, stride=2, padding="same", output_padding=1,
             size_rule="keras"),
        dict(input=[1, 2, 3, 3], out_channels=2, kernel_size=3, stride=2, padding="same", output_shape=[5, 6]),
        dict(input=[1, 3, 3, 4], layout="NHWC", out_channels=2, kernel_size=2, stride=2, dilation=2, groups=2,
             padding=[1, 0, 0, 2], output_padding=1, bias=True),
    ],
    "conv2d": [
        dict(input=[1, 1, 1, 1], out_channels=1, kernel_size=1),
        dict(input=[2, 2, 5, 6], out_channels=3, kernel_size=3, stride=2, padding=1, bias=True),
        dict(input=[1, 4, 6, 5], out_channels=4, kernel_size=[3, 2], stride=[1, 2], dilation=[2, 1], groups=2,
             padding=[2, 0, 1, 1], bias=True),
        dict(input=[1, 5, 5, 2], layout="NHWC", out_channels=2, kernel_size=3, stride=2, padding="same", bias=True),
        dict(input=[1, 2, 6, 6], out_channels=2, kernel_size=4, stride=3, padding="same_lower"),
        dict(input=[1, 2, 7, 5], out_channels=2, kernel_size=2, stride=3, dilation=2, padding="valid"),
        dict(input=[1, 6, 5, 4], layout="NHWC", out_channels=6, kernel_size=2, stride=2, groups=2,
             padding=[0, 1, 1, 0], bias=True),
    ],
    "avg_pool2d": [
        dict(input=[1, 1, 1, 1], kernel_size=1),
        dict(input=[2, 2, 5, 5], kernel_size=3, stride=2, padding=1),
        dict(input=[1, 2, 5, 5], kernel_size=3, stride=2, padding=1, count_include_pad=True),
        dict(input=[1, 2, 6, 5], kernel_size=[3, 2], stride=[2, 3], ceil_mode=True),
        dict(input=[1, 2, 6, 5], kernel_size=[3, 2], stride=[2, 3], padding=[1, 0, 0, 1], ceil_mode=True,
             count_include_pad=True),
        dict(input=[1, 5, 5, 2], layout="NHWC", kernel_size=2, stride=2, padding="same", count_include_pad=True),
        dict(input=[1, 2, 7, 6], kernel_size=3, stride=2, padding="same_lower"),
        dict(input=[1, 2, 5, 7], kernel_size=2, stride=1, padding="valid"),
    ],
    "max_pool2d": [
        dict(input=[1, 1, 1, 1], kernel_size=1),
        dict(input=[2, 2, 5, 5], kernel_size=3, stride=2, padding=1),
        dict(input=[1, 2, 6, 5], kernel_size=[3, 2], stride=[2, 3], ceil_mode=True, padding=[1, 0, 0, 1]),
        dict(input=[1, 2, 7, 7], kernel_size=2, stride=2, dilation=2, padding=1, ceil_mode=True),
        dict(input=[1, 5, 6, 2], layout="NHWC", kernel_size=3, stride=2, padding="same"),
        dict(input=[1, 2, 7, 6], kernel_size=3, stride=2, dilation=[1, 2], padding="same_lower"),
        dict(input=[1, 2, 5, 5], kernel_size=3, stride=1, padding="valid"),
    ],
}
def _draw(op: str, rng: np.random.Generator) -> dict:
    """Random small fields of ``op`` (possibly invalid: the caller keeps the ones its semantics accepts)."""
    def pick(*options):
        return options[int(rng.integers(len(options)))]

    def pair(low, high):
        return [int(v) for v in rng.integers(low, high + 1, size=2)]
    layout = pick("NCHW", "NHWC")
    n, c, h, w = 1, int(rng.integers(1, 5)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
    fields = dict(input=[n, h, w, c] if layout == "NHWC" else [n, c, h, w], layout=layout,
                  kernel_size=pair(1, 3), stride=pair(1, 3))
    padding = pick("same", "same_lower", "valid", [int(v) for v in rng.integers(0, 3, size=4)])
    fields["padding"] = padding
    if op in ("conv2d", "conv2d_transpose"):
        groups = pick(1, 1, 2)
        fields |= dict(out_channels=groups * int(rng.integers(1, 3)), groups=groups, dilation=pair(1, 2),
                       bias=bool(rng.integers(2)))
        fields["input"][3 if layout == "NHWC" else 1] = groups * int(rng.integers(1, 3))
    if op == "conv2d_transpose":
        fields["output_padding"] = pair(0, 1)
        fields["size_rule"] = pick("tensorflow", "keras")
    if op in ("avg_pool2d", "max_pool2d"):
        fields["ceil_mode"] = bool(rng.integers(2))
    if op == "avg_pool2d":
        fields["count_include_pad"] = bool(rng.integers(2))
    if op == "max_pool2d":
        fields["dilation"] = pair(1, 2)
    return fields


def _random_cases(op: str, count: int, seed: int = 15) -> list[dict]:
    spec, rng, found = ops.get(op), np.random.default_rng(seed), []
    while len(found) < count:
        fields = _draw(op, rng)
        try:
            spec.resolve(spec.Params.model_validate(fields))
        except (ops.InvalidCall, ValueError):
            continue
        found.append(fields)
    return found


for _op in CASES:                      # a seeded sweep on top of the hand-picked table
    CASES[_op] += _random_cases(_op, 12)

ALL = [(op, fields) for op, table in CASES.items() for fields in table]
LINEAR = [(op, fields) for op, fields in ALL if op != "max_pool2d"]


def _id(item) -> str:
    op, fields = item
    return f"{op}[{CASES[op].index(fields)}]"


def setup(op: str, fields: dict, seed: int = 0):
    """Canonical params, operands (distinct values, so no max-pool tie) and a cotangent of the output's shape."""
    spec = ops.get(op)
    params = spec.Params.model_validate(fields)
    out_shape = spec.resolve(params).output_shape
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in spec.shapes(params).items():
        size = int(np.prod(shape))
        arrays[name] = ((rng.permutation(size) - size / 2) / size).reshape(shape)   # distinct, gaps 1/size
    return params.model_dump(), arrays, rng.standard_normal(out_shape)


def finite_difference(op: str, params: dict, arrays: dict, dy: np.ndarray, name: str, eps: float) -> np.ndarray:
    """The central difference of ``<dy, oracle(arrays)>`` with respect to every element of ``arrays[name]``."""
    oracle = ops.get(op).oracle
    base = arrays[name]
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        values = []
        for step in (eps, -eps):
            moved = base.copy()
            moved[index] += step
            y = oracle(params, {**arrays, name: moved})
            # A max-pool window of padding only is −∞ whatever x is: a constant, with no gradient.
            values.append(float(np.sum(dy * np.where(np.isfinite(y), y, 0.0))))
        grad[index] = (values[0] - values[1]) / (2 * eps)
    return grad


def fd_mismatch(op, params, arrays, dy, grads) -> dict[str, float]:
    """Per operand, the largest |vjp − finite difference| (with eps below half the smallest value gap)."""
    eps = 0.25 / max(a.size for a in arrays.values())
    assert set(grads) == set(arrays), (set(grads), set(arrays))
    out = {}
    for name in arrays:
        expected = finite_difference(op, params, arrays, dy, name, eps)
        assert grads[name].shape == expected.shape, (name, grads[name].shape, expected.shape)
        out[name] = float(np.max(np.abs(grads[name] - expected)))
    return out


TOL = 1e-8       # the central difference of a (bi)linear or piecewise-linear map is exact up to rounding


@pytest.mark.parametrize("item", ALL, ids=_id)
def test_vjp_matches_a_central_finite_difference(item):
    op, fields = item
    params, arrays, dy = setup(op, fields)
    grads = VJP[op](params, arrays, dy)
    assert all(g.dtype == np.float64 for g in grads.values())
    errors = fd_mismatch(op, params, arrays, dy, grads)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("item", LINEAR, ids=_id)
def test_the_adjoint_identity_holds_for_the_linear_operators(item):
    op, fields = item
    params, arrays, dy = setup(op, fields, seed=1)
    oracle = ops.get(op).oracle
    grads = VJP[op](params, arrays, dy)
    rng = np.random.default_rng(2)
    for name in ("x", "w"):
        if name not in arrays:
            continue
        v = rng.standard_normal(arrays[name].shape)
        # f is linear in each of x and w with the other fixed (and without the bias, which is affine).
        linear = {k: a for k, a in arrays.items() if k != "b"} | {name: v}
        lhs, rhs = float(np.sum(dy * oracle(params, linear))), float(np.sum(grads[name] * v))
        assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12), name
    if "b" in arrays:
        v = rng.standard_normal(arrays["b"].shape)
        shift = oracle(params, arrays | {"b": arrays["b"] + v}) - oracle(params, arrays)
        assert float(np.sum(dy * shift)) == pytest.approx(float(np.sum(grads["b"] * v)), rel=1e-12)


def test_one_element_convolutions_by_hand():
    x, w, b, dy = np.array([[[[2.0]]]]), np.array([[[[3.0]]]]), np.array([5.0]), np.array([[[[7.0]]]])
    for op in ("conv2d", "conv2d_transpose"):
        params = ops.get(op).Params.model_validate(dict(input=[1, 1, 1, 1], out_channels=1, kernel_size=1,
                                                        bias=True)).model_dump()
        grads = VJP[op](params, {"x": x, "w": w, "b": b}, dy)
        assert grads["x"].item() == 21.0 and grads["w"].item() == 14.0 and grads["b"].item() == 7.0, op


def test_average_pooling_by_hand_counts_the_padding_only_when_asked():
    # 1×3 row, k 2, s 2, pad 1 on the left: windows [pad, x0] and [x1, x2].
    fields = dict(input=[1, 1, 1, 3], kernel_size=[1, 2], stride=[1, 2], padding=[0, 0, 1, 0])
    dy = np.array([[[[4.0, 6.0]]]])
    for include, first in ((False, 4.0), (True, 2.0)):
        params = ops.get("avg_pool2d").Params.model_validate(fields | {"count_include_pad": include}).model_dump()
        dx = avg_gradient.vjp(params, {"x": np.zeros((1, 1, 1, 3))}, dy)["x"]
        assert dx.ravel().tolist() == [first, 3.0, 3.0], include


TIE = np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0], [0.0, 0.0, 0.0]]]])   # maximum 3 at row-major 1, 2, 3, 5


def _max_params(**extra):
    return ops.get("max_pool2d").Params.model_validate(dict(input=[1, 1, 3, 3], kernel_size=3) | extra).model_dump()


def max_pool_tie_routes_to_the_first_maximum(vjp) -> bool:
    """The hand case of the tie rule (measured on PyTorch and TensorFlow CPU: position 1 takes all)."""
    dx = vjp(_max_params(), {"x": TIE}, np.array([[[[1.0]]]]))["x"]
    expected = np.zeros((3, 3))
    expected[0, 1] = 1.0
    return bool(np.array_equal(dx[0, 0], expected))


def test_a_max_pool_tie_goes_to_the_first_maximum_and_padding_is_never_selected():
    assert max_pool_tie_routes_to_the_first_maximum(max_gradient.vjp)
    # All-negative input with padding 1: the −∞ padding never wins; overlapping windows add up on one winner.
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    dx = max_gradient.vjp(_max_params(kernel_size=2, stride=1, padding=1), {"x": x}, np.ones((1, 1, 4, 4)))["x"]
    assert dx.sum() == 16.0 and dx[0, 0, 0, 0] == 4.0, dx


# Tightness: deliberately wrong gradients, each of which the checks above must reject.

def _tap_dropped(vjp):
    """dx computed without the last kernel tap (dx is linear in w: drop it from w), dw with that tap zeroed."""
    def wrong(params, arrays, dy):
        w = arrays["w"].copy()
        w[..., -1, -1] = 0.0
        grads = vjp(params, {**arrays, "w": w}, dy)
        grads["w"][..., -1, -1] = 0.0
        return grads
    return wrong


def _bias_over_the_wrong_axis(vjp):
    """db summed over N, C and H, leaving W (the case makes W_out == C_out, so only the values can tell)."""
    def wrong(params, arrays, dy):
        grads = vjp(params, arrays, dy)
        nchw = dy.transpose(0, 3, 1, 2) if params.get("layout") == "NHWC" else dy
        grads["b"] = nchw.sum(axis=(0, 1, 2))
        return grads
    return wrong


SQUARE = {"conv2d": dict(input=[1, 2, 4, 4], out_channels=3, kernel_size=2, stride=1, bias=True),
          "conv2d_transpose": dict(input=[1, 2, 2, 2], out_channels=3, kernel_size=2, stride=1, bias=True)}


@pytest.mark.parametrize("op", ["conv2d", "conv2d_transpose"])
@pytest.mark.parametrize("variant", ["correct", "tap dropped", "bias over the wrong axis"])
def test_the_finite_difference_check_catches_wrong_convolution_gradients(op, variant):
    params, arrays, dy = setup(op, SQUARE[op])
    vjp = {"correct": VJP[op], "tap dropped": _tap_dropped(VJP[op]),
           "bias over the wrong axis": _bias_over_the_wrong_axis(VJP[op])}[variant]
    errors = fd_mismatch(op, params, arrays, dy, vjp(params, arrays, dy))
    wrong = {name for name, error in errors.items() if error > TOL}
    assert wrong == {"correct": set(), "tap dropped": {"x", "w"}, "bias over the wrong axis": {"b"}}[variant], errors


def test_the_adjoint_identity_catches_a_dropped_tap():
    params, arrays, dy = setup("conv2d_transpose", CASES["conv2d_transpose"][1])
    v = np.random.default_rng(3).standard_normal(arrays["x"].shape)
    lhs = float(np.sum(dy * ops.get("conv2d_transpose").oracle(params, {"x": v, "w": arrays["w"]})))
    rhs = float(np.sum(_tap_dropped(transpose_gradient.vjp)(params, arrays, dy)["x"] * v))
    assert abs(lhs - rhs) > 1e-3 * abs(lhs)


@pytest.mark.parametrize("rule", ["first", "last"])
def test_the_hand_case_catches_ties_routed_to_the_last_maximum(rule, monkeypatch):
    if rule == "last":      # the first maximum of the reversed tap order is the last one
        monkeypatch.setattr(max_gradient, "winner", lambda taps: len(taps) - 1 - np.argmax(taps[::-1], axis=0))
    assert max_pool_tie_routes_to_the_first_maximum(max_gradient.vjp) == (rule == "first")
