"""The inverse of every adapter's mapping (``Backend.from_native``/``to_native``, Note [Native vocabularies] in
``harness/native.py``), without running any framework: the adapters only build Programs.

* native -> canonical -> native: native calls drawn by hypothesis in each surface's own vocabulary (ints or
  pairs, defaults omitted or written out, TF's 1/2/4-int lists, any-case pad modes), read as canonical
  fields, posed by the adapter, read back from its Program: equal to the original, normalised;
* canonical -> native -> canonical: every valid case of the default suite a surface poses natively (its
  Program not ``emulated``) reads back as a call with the same resolved semantics;
* unknown, ill-typed and inexpressible native parameters raise ``NativeParamError`` naming the parameter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

from harness import ops
from harness.backends import backend_class
from harness.backends.base import Call, NativeParamError, Unsupported
from harness.cases import load_suite
from harness.native import operand_shapes
from harness.ops.pooling.frameworks import touches_padding
from harness.ops.spec import InvalidCall
from native_strategies import native as native_calls

ROOT = Path(__file__).resolve().parents[1]
SURFACES = ["tf.nn", "tf.keras", "torch.functional", "torch.nn", "mindspore.nn", "mindspore.ops", "onnxruntime",
            "jax.lax"]
OPERATORS = ["conv2d_transpose", "conv2d", "avg_pool2d", "max_pool2d"]
#: Operators a surface always emulates (no native form to read back from the suite's Programs).
ALWAYS_EMULATED = {"jax.lax": {"avg_pool2d"}}


def resolved(op: str, fields: dict, input_shape) -> dict:
    """The resolved semantics of canonical fields (``{"invalid": field}`` for a call the semantics rejects)."""
    spec = ops.get(op)
    try:
        return spec.resolve(spec.Params(**fields, input=list(input_shape))).as_dict()
    except InvalidCall as exc:
        return {"invalid": exc.field}


def same_semantics(op: str, a: dict, b: dict) -> bool:
    """Equal resolved semantics, up to what does not change the function: an average whose windows never
    cover padding counts it or not alike; ``ceil_mode`` with the same windows (``out_hw`` and pads equal) adds
    none; a transposed convolution's bottom crop and output padding only set ``out_hw`` together (JAX's
    padding pairs carry their difference)."""
    if op == "avg_pool2d" and not touches_padding(a) and not touches_padding(b):
        ignore = {"count_include_pad", "count_rule"}
        a, b = ({k: v for k, v in r.items() if k not in ignore} for r in (a, b))
    if op in ("avg_pool2d", "max_pool2d"):
        a, b = ({k: v for k, v in r.items() if k != "ceil_mode"} for r in (a, b))
    if op == "conv2d_transpose" and "invalid" not in a and "invalid" not in b:
        a, b = (_kept_rows(r) for r in (a, b))
    return a == b


def _kept_rows(r: dict) -> dict:
    (top, bottom, left, right), (oh, ow) = r["crops"], r["output_padding"]
    return {**{k: v for k, v in r.items() if k != "output_padding"}, "crops": (top, bottom - oh, left, right - ow)}


def build(surface: str, op: str, fields: dict, input_shape):
    """The surface's Program for canonical fields, built the way the parent builds one (no framework)."""
    spec = ops.get(op)
    params = spec.Params(**fields, input=list(input_shape))
    try:
        r = spec.resolve(params).as_dict()
    except InvalidCall:
        r = None
    arrays = {name: np.zeros(shape) for name, shape in spec.shapes(params).items()}
    call = Call(op=op, case_id="native", params=params.model_dump(), resolved=r, dtype="float32", arrays=arrays)
    cls = backend_class(surface)
    assert cls.plans_calls
    return getattr(cls(), op)(call), operand_shapes(call)


# ---------------------------------------------------------------- native -> canonical -> native

@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("surface", SURFACES)
def test_native_calls_round_trip_through_the_canonical_case(surface, op):
    cls = backend_class(surface)
    inverse = cls.native_inverse(op)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(native_calls(surface, op))
    def check(drawn):
        native, input_shape = drawn
        fields = cls.from_native(op, native, input_shape)
        assume("invalid" not in resolved(op, fields, input_shape))   # e.g. a window of padding only
        program, shapes = build(surface, op, fields, input_shape)
        back = cls.to_native(op, program, shapes)
        if program.emulated:   # the adapter spells this call otherwise (TF: pads equal to SAME's as 'SAME')
            assert same_semantics(op, resolved(op, cls.from_native(op, back, input_shape), input_shape),
                                  resolved(op, fields, input_shape)), (native, back, program.notes)
        else:
            assert back == inverse.normalise(native), (native, fields)

    check()


# ---------------------------------------------------------------- canonical -> native -> canonical

@pytest.fixture(scope="module")
def suite():
    return [c for c in load_suite([str(ROOT / "cases")]) if c.resolved is not None]


@pytest.mark.parametrize("surface", SURFACES)
def test_suite_cases_read_back_with_the_same_semantics(surface, suite):
    cls, checked = backend_class(surface), {}
    for case in suite:
        fields = {k: v for k, v in case.canonical_params().items() if k != "input"}
        try:
            program, shapes = build(surface, case.op, fields, case.params.input)
        except Exception as exc:   # Unsupported: the surface cannot pose it at all
            assert type(exc).__name__ == "Unsupported", (case.id, exc)
            continue
        if program.emulated:       # part of the call is not the framework's own: no native form to read back
            continue
        native = cls.to_native(case.op, program, shapes)
        back = cls.from_native(case.op, native, case.params.input)
        assert same_semantics(case.op, resolved(case.op, back, case.params.input), case.resolved.as_dict()), \
            (case.id, native, back)
        checked[case.op] = checked.get(case.op, 0) + 1
    assert set(checked) == set(OPERATORS) - ALWAYS_EMULATED.get(surface, set()), checked


# ---------------------------------------------------------------- what a surface does not say

#: jax.lax's calls the refusals below vary: conv_transpose, conv_general_dilated, reduce_window (max).
_CT = {"rhs": [2, 4, 3, 3], "strides": [2, 2], "padding": "SAME", "dimension_numbers": ["NCHW", "OIHW", "NCHW"],
       "transpose_kernel": True}
_CG = {"rhs": [4, 1, 3, 3], "window_strides": [1, 1], "padding": [[1, 1], [1, 1]], "lhs_dilation": [1, 1],
       "feature_group_count": 2}
_RW = {"init_value": float("-inf"), "computation": "max", "window_dimensions": [1, 1, 2, 2],
       "window_strides": [1, 1, 2, 2], "padding": "SAME"}

#: (surface, op, native, input shape, the parameter the error must name): unknown names, wrong types, and
#: values the canonical semantics cannot express.
REFUSED = [
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 2], "output_shape": [1, 8, 8, 4], "strides": 2, "pad": 1},
     [1, 4, 4, 2], "pad"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 2], "output_shape": [1, 8, 8, 4], "strides": 2,
                                   "padding": "same"}, [1, 4, 4, 2], "padding"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 2], "output_shape": [1, 8, 8, 4], "strides": [2, 2, 2, 1]},
     [1, 4, 4, 2], "strides"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 3], "output_shape": [1, 8, 8, 4], "strides": 2},
     [1, 4, 4, 2], "filters"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 2], "output_shape": [1, 8, 8, 4], "strides": 2,
                                   "padding": [[1, 0], [0, 0], [0, 0], [0, 0]]}, [1, 4, 4, 2], "padding"),
    ("tf.nn", "conv2d", {"filters": [3, 3, 2, 4], "strides": "1", "padding": "VALID"}, [1, 4, 4, 2], "strides"),
    ("tf.nn", "conv2d_transpose", {"output_shape": [1, 8, 8, 4], "strides": 2}, [1, 4, 4, 2], "filters"),
    ("tf.keras", "conv2d_transpose", {"filters": 4, "kernel_size": 3, "activation": "relu"}, [1, 4, 4, 2],
     "activation"),
    ("tf.keras", "conv2d_transpose", {"filters": 4, "kernel_size": 3, "groups": 2}, [1, 4, 4, 2], "groups"),
    ("tf.keras", "conv2d", {"filters": 4, "kernel_size": 3, "strides": 2, "dilation_rate": 2}, [1, 9, 9, 2],
     "dilation_rate"),
    ("tf.keras", "conv2d", {"filters": 4, "kernel_size": 3, "padding": "causal"}, [1, 9, 9, 2], "padding"),
    ("tf.keras", "avg_pool2d", {"pool_size": 2, "use_bias": True}, [1, 9, 9, 2], "use_bias"),
    ("torch.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3,
                                      "padding_mode": "reflect"}, [1, 2, 4, 4], "padding_mode"),
    ("torch.nn", "conv2d_transpose", {"in_channels": 3, "out_channels": 4, "kernel_size": 3}, [1, 2, 4, 4],
     "in_channels"),
    ("torch.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2,
                                      "output_padding": 1, "output_size": [9, 9]}, [1, 2, 4, 4], "output_padding"),
    ("torch.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": "same"},
     [1, 2, 4, 4], "padding"),
    ("torch.nn", "conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": "same"},
     [1, 2, 4, 4], "padding"),
    ("torch.nn", "conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "bias": 1}, [1, 2, 4, 4], "bias"),
    ("torch.nn", "conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": (3, 3, 3)}, [1, 2, 4, 4],
     "kernel_size"),
    ("torch.nn", "avg_pool2d", {"kernel_size": 2, "divisor_override": 3}, [1, 2, 4, 4], "divisor_override"),
    ("torch.functional", "max_pool2d", {"kernel_size": 2, "return_indices": True}, [1, 2, 4, 4], "return_indices"),
    ("torch.functional", "conv2d_transpose", {"weight": [3, 4, 3, 3]}, [1, 2, 4, 4], "weight"),
    ("torch.functional", "conv2d_transpose", {"weight": [2, 4, 3, 3], "stride": 0}, [1, 2, 4, 4], "stride"),
    ("mindspore.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1},
     [1, 2, 4, 4], "padding"),
    ("mindspore.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "pad_mode": "SAME"},
     [1, 2, 4, 4], "pad_mode"),
    ("mindspore.nn", "conv2d_transpose", {"in_channels": 2, "out_channels": 4, "kernel_size": 3,
                                          "data_format": "NCHW"}, [1, 2, 4, 4], "data_format"),
    ("mindspore.nn", "conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": (1, 1)},
     [1, 2, 4, 4], "padding"),
    ("mindspore.nn", "max_pool2d", {"kernel_size": 2, "pad_mode": "same", "dilation": 2}, [1, 2, 4, 4], "dilation"),
    ("mindspore.nn", "avg_pool2d", {"kernel_size": 2, "divisor_override": 2}, [1, 2, 4, 4], "divisor_override"),
    ("mindspore.ops", "conv2d_transpose", {"out_channel": 2, "kernel_size": 3, "input_size": [1, 4, 6, 6],
                                           "mode": 2}, [1, 2, 4, 4], "mode"),
    ("mindspore.ops", "conv2d_transpose", {"out_channel": 4, "kernel_size": 3, "input_size": [1, 4, 6, 6]},
     [1, 2, 4, 4], "out_channel"),
    ("mindspore.ops", "conv2d_transpose", {"out_channel": 2, "kernel_size": 3}, [1, 2, 4, 4], "input_size"),
    ("mindspore.ops", "avg_pool2d", {"kernel_size": 2, "stride": 2, "divisor_override": 3}, [1, 2, 4, 4],
     "divisor_override"),
    ("mindspore.ops", "max_pool2d", {"kernel_size": 2, "strides": 2, "pad_mode": "pad"}, [1, 2, 4, 4], "pad_mode"),
    ("onnxruntime", "conv2d_transpose", {"W": [2, 4, 3, 3], "strides": [2, 2], "output_shape": [9, 9]}, [1, 2, 4, 4],
     "output_shape"),
    ("onnxruntime", "conv2d", {"W": [4, 2, 3, 3], "auto_pad": "SAME_UPPER", "pads": [1, 1, 1, 1]}, [1, 2, 4, 4],
     "pads"),
    ("onnxruntime", "conv2d", {"W": [4, 2, 3, 3], "strides": 2}, [1, 2, 4, 4], "strides"),
    ("onnxruntime", "conv2d", {"W": [4, 2, 3, 3], "kernel_shape": [3, 2]}, [1, 2, 4, 4], "kernel_shape"),
    ("onnxruntime", "avg_pool2d", {"kernel_shape": [2, 2], "ceil_mode": True}, [1, 2, 4, 4], "ceil_mode"),
    ("onnxruntime", "avg_pool2d", {"kernel_shape": [2, 2], "dilations": [2, 2]}, [1, 2, 4, 4], "dilations"),
    *[("jax.lax", op, native, shape, param) for op, native, shape, param in [
        ("conv2d_transpose", {**_CT, "transpose_kernel": False}, [1, 2, 4, 4], "transpose_kernel"),
        ("conv2d_transpose", {k: v for k, v in _CT.items() if k != "transpose_kernel"}, [1, 2, 4, 4],
         "transpose_kernel"),
        ("conv2d_transpose", {**_CT, "strides": 2}, [1, 2, 4, 4], "strides"),
        ("conv2d_transpose", {**_CT, "padding": [[3, 0], [0, 0]]}, [1, 2, 4, 4], "padding"),      # lo > K − 1
        ("conv2d_transpose", {**_CT, "padding": [[0, 4], [0, 0]]}, [1, 2, 4, 4], "padding"),      # hi − (K−1) ≥ s
        ("conv2d_transpose", {**_CT, "padding": "same"}, [1, 2, 4, 4], "padding"),               # JAX raises
        ("conv2d_transpose", {**_CT, "strides": [1, 1], "padding": "SAME_LOWER", "use_consistent_padding": True},
         [1, 2, 4, 4], "padding"),
        ("conv2d_transpose", {**_CT, "dimension_numbers": ["NCHW", "OIHW", "NHWC"]}, [1, 2, 4, 4],
         "dimension_numbers"),
        ("conv2d_transpose", {**_CT, "dimension_numbers": ["NCHW", "IOHW", "NCHW"]}, [1, 2, 4, 4],
         "dimension_numbers"),
        ("conv2d_transpose", {**_CT, "rhs": [3, 4, 3, 3]}, [1, 2, 4, 4], "rhs"),
        ("conv2d_transpose", {**_CT, "preferred_element_type": "float32"}, [1, 2, 4, 4], "preferred_element_type"),
        ("conv2d_transpose", {**_CT, "output_padding": [1, 1]}, [1, 2, 4, 4], "output_padding"),
        ("conv2d_transpose", {**_CG, "window_strides": [2, 2]}, [1, 2, 4, 4], "window_strides"),
        ("conv2d_transpose", {**_CG, "padding": "SAME", "lhs_dilation": [2, 2]}, [1, 2, 4, 4], "padding"),  # JAX raises
        ("conv2d", {**_CG, "lhs_dilation": [2, 2]}, [1, 2, 4, 4], "lhs_dilation"),
        ("conv2d", {**_CG, "padding": [[-1, 0], [0, 0]]}, [1, 2, 4, 4], "padding"),
        ("conv2d", {**_CG, "batch_group_count": 2}, [1, 2, 4, 4], "batch_group_count"),
        ("conv2d", {**_CG, "rhs": [4, 2, 3, 3]}, [1, 2, 4, 4], "rhs"),
        ("max_pool2d", {**_RW, "init_value": 0.0}, [1, 2, 4, 4], "init_value"),
        ("max_pool2d", {**_RW, "computation": "add"}, [1, 2, 4, 4], "computation"),
        ("max_pool2d", {**_RW, "window_dimensions": [2, 1, 2, 2]}, [1, 2, 4, 4], "window_dimensions"),
        ("max_pool2d", {**_RW, "window_dimensions": [1, 2, 2, 2]}, [1, 2, 4, 4], "window_dimensions"),
        ("max_pool2d", {**_RW, "window_strides": [1, 2, 1, 1]}, [1, 2, 4, 4], "window_strides"),
        ("max_pool2d", {k: v for k, v in _RW.items() if k != "window_strides"}, [1, 2, 4, 4], "window_strides"),
        ("max_pool2d", {**_RW, "base_dilation": [1, 1, 2, 2]}, [1, 2, 4, 4], "base_dilation"),
        ("max_pool2d", {**_RW, "window_dimensions": 2}, [1, 2, 4, 4], "window_dimensions"),
        ("avg_pool2d", {"window_shape": [2, 2], "padding": [[-1, 0], [0, 0]]}, [1, 4, 4, 2], "padding"),
        ("avg_pool2d", {"window_shape": [2, 2], "ceil_mode": True}, [1, 4, 4, 2], "ceil_mode"),
    ]],
]


@pytest.mark.parametrize("surface, op, native, input_shape, param", REFUSED,
                         ids=[f"{s}-{o}-{p}" for s, o, _, _, p in REFUSED])
def test_unknown_ill_typed_and_inexpressible_parameters_are_named(surface, op, native, input_shape, param):
    with pytest.raises(NativeParamError) as info:
        backend_class(surface).from_native(op, native, input_shape)
    assert info.value.param == param, str(info.value)
    assert str(info.value).startswith(f"{param}: ")


@pytest.mark.parametrize("surface, op, native, input_shape, param", [
    ("torch.nn", "conv2d_transpose", {"in_channels": 8, "out_channels": 16, "kernel_size": 3, "padding": None},
     [1, 8, 15, 15], "padding"),
    ("tf.keras", "conv2d_transpose", {"filters": 16, "kernel_size": 3, "strides": None}, [1, 15, 15, 8], "strides"),
    ("tf.nn", "conv2d_transpose", {"filters": [3, 3, 4, 3], "output_shape": None, "strides": 2}, [1, 8, 8, 3],
     "output_shape"),
    ("mindspore.nn", "conv2d", {"in_channels": 3, "out_channels": 4, "kernel_size": None}, [1, 3, 8, 8],
     "kernel_size"),
])
def test_an_explicit_none_is_refused_where_the_api_default_is_not_none(surface, op, native, input_shape, param):
    with pytest.raises(NativeParamError) as info:
        backend_class(surface).from_native(op, native, input_shape)
    assert info.value.param == param and "None" in info.value.message, str(info.value)


def test_an_explicit_none_means_the_default_where_the_api_default_is_none():
    keras = backend_class("tf.keras")
    assert (keras.from_native("max_pool2d", {"pool_size": 3, "strides": None}, [1, 8, 8, 2])
            == keras.from_native("max_pool2d", {"pool_size": 3}, [1, 8, 8, 2]))
    torch = backend_class("torch.nn")
    assert (torch.from_native("avg_pool2d", {"kernel_size": 2, "stride": None}, [1, 2, 8, 8])
            == torch.from_native("avg_pool2d", {"kernel_size": 2}, [1, 2, 8, 8]))


def test_an_unknown_name_lists_the_known_ones_and_a_bad_input_shape_is_named():
    with pytest.raises(NativeParamError, match="its parameters: in_channels, out_channels, kernel_size"):
        backend_class("torch.nn").from_native("conv2d_transpose", {"in_chanels": 2}, [1, 2, 4, 4])
    with pytest.raises(NativeParamError) as info:
        backend_class("torch.nn").from_native("avg_pool2d", {"kernel_size": 2}, [1, 2, 4])
    assert info.value.param == "input"
    with pytest.raises(NativeParamError) as info:
        backend_class("numpy").from_native("conv2d", {}, [1, 2, 4, 4])
    assert info.value.param == "op"


def test_minimal_leaves_out_what_the_api_defaults():
    inverse = backend_class("torch.nn").native_inverse("conv2d_transpose")
    call = {"in_channels": 3, "out_channels": 16, "kernel_size": (3, 3), "stride": 2, "padding": [1, 1],
            "dilation": 1, "bias": True, "padding_mode": "zeros", "dtype": "float32"}
    assert inverse.minimal(call) == {"in_channels": 3, "out_channels": 16, "kernel_size": [3, 3], "stride": [2, 2],
                                     "padding": [1, 1]}


@pytest.mark.parametrize("surface, native, canonical", [
    # The seed page's example 1, and the Keras/torch U-Net upsampler of issue 14.
    ("tf.nn", {"filters": [4, 4, 64, 3], "output_shape": [1, 19, 53, 64], "strides": 1,
               "padding": [[0, 0], [0, 0], [0, 0], [0, 0]]},
     {"padding": [0, 0, 0, 0], "output_shape": [19, 53], "layout": "NHWC", "out_channels": 64}),
    ("mindspore.nn", {"in_channels": 3, "out_channels": 64, "kernel_size": 4, "weight_init": "normal",
                      "pad_mode": "pad"}, {"padding": [0, 0, 0, 0], "layout": "NCHW", "bias": False}),
    ("tf.keras", {"filters": 16, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1},
     {"padding": "same", "size_rule": "keras", "output_padding": [1, 1], "bias": True, "layout": "NHWC"}),
    ("torch.nn", {"in_channels": 3, "out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1,
                  "output_padding": 1}, {"padding": [1, 1, 1, 1], "output_padding": [1, 1], "bias": True}),
    # Keras' default output_padding for 'valid' with a kernel below the stride: (H−1)·s + max(K, s).
    ("tf.keras", {"filters": 16, "kernel_size": 2, "strides": 3, "padding": "valid"},
     {"padding": "valid", "size_rule": "keras", "output_padding": [1, 1]}),
])
def test_documented_examples_read_as_their_canonical_meaning(surface, native, canonical):
    input_shape = [1, 16, 50, 3] if surface in ("tf.nn", "tf.keras") else [1, 3, 16, 50]
    fields = backend_class(surface).from_native("conv2d_transpose", native, input_shape)
    assert {k: fields[k] for k in canonical} == canonical


@pytest.mark.parametrize("op, native, input_shape, canonical", [
    # JAX's 'VALID' with a kernel below the stride keeps s − K zero rows: Keras' valid (H·s rows).
    ("conv2d_transpose", {**_CT, "rhs": [2, 4, 2, 2], "strides": [3, 3], "padding": "VALID"}, [1, 2, 4, 4],
     {"padding": "valid", "size_rule": "keras", "output_padding": [1, 1]}),
    # Pairs pad the stride-dilated input: a negative low pad crops past K − 1, a high pad past K − 1 keeps
    # zero rows (output padding).
    ("conv2d_transpose", {**_CT, "padding": [[-1, 3], [2, 2]]}, [1, 2, 4, 4],
     {"padding": [3, 0, 0, 0], "output_padding": [1, 0]}),
    # use_consistent_padding: pairs are the forward conv's padding, i.e. the crops (torch's padding).
    ("conv2d_transpose", {**_CT, "padding": [[1, 1], [0, 1]], "use_consistent_padding": True}, [1, 2, 4, 4],
     {"padding": [1, 1, 0, 1], "output_padding": [0, 0]}),
    # A lower-case 'same' is not conv_transpose's own: at stride 1 it is a forward SAME, the odd crop on top.
    ("conv2d_transpose", {**_CT, "rhs": [2, 4, 4, 4], "strides": [1, 1], "padding": "same"}, [1, 2, 4, 4],
     {"padding": [2, 1, 2, 1]}),
    # conv_transpose's default dimension_numbers: NHWC with an HWIO rhs (tf.nn's filters layout).
    ("conv2d_transpose", {"rhs": [3, 3, 4, 2], "strides": [2, 2], "padding": "SAME", "transpose_kernel": True},
     [1, 4, 4, 2], {"layout": "NHWC", "out_channels": 4, "padding": "same"}),
    # The grouped form: conv_general_dilated with lhs_dilation (the stride).
    ("conv2d_transpose", {**_CG, "lhs_dilation": [2, 2]}, [1, 2, 4, 4],
     {"groups": 2, "out_channels": 4, "stride": [2, 2], "padding": [1, 1, 1, 1]}),
    ("conv2d", {**_CG, "padding": "same_lower"}, [1, 2, 4, 4], {"padding": "same_lower", "groups": 2}),
    # reduce_window has no layout: a window pooling axis 2 only reads as NCHW, (1, kh, kw, 1) as NHWC.
    ("max_pool2d", {**_RW, "window_dimensions": [1, 1, 3, 1], "window_strides": [1, 1, 1, 1]}, [1, 4, 4, 2],
     {"layout": "NCHW", "kernel_size": [3, 1]}),
    ("max_pool2d", {**_RW, "window_dimensions": [1, 3, 3, 1], "window_strides": [1, 2, 2, 1],
                    "padding": [[0, 0], [1, 0], [0, 1], [0, 0]]}, [1, 4, 4, 2],
     {"layout": "NHWC", "padding": [1, 0, 0, 1]}),
    # flax.linen.avg_pool: channels-last, strides default to 1 (not the window), the padding counted.
    ("avg_pool2d", {"window_shape": [3, 3], "padding": "SAME"}, [1, 4, 4, 2],
     {"stride": [1, 1], "count_include_pad": True, "layout": "NHWC", "padding": "same"}),
])
def test_jax_native_calls_read_as_their_canonical_meaning(op, native, input_shape, canonical):
    """Each meaning checked against JAX 0.10.2 itself (float64, to 1e-9) when this mapping was written."""
    fields = backend_class("jax.lax").from_native(op, native, input_shape)
    assert {k: fields[k] for k in canonical} == canonical


def test_jax_average_pooling_reads_back_as_flax_avg_pool(suite):
    """The adapter's emulated average is flax.linen.avg_pool's computation: read back in flax's parameters, it
    computes the same pooling (the oracle's outputs equal); what flax cannot say (NCHW, a counted ceil_mode
    overhang) is refused."""
    cls, read, refused = backend_class("jax.lax"), 0, set()
    for case in (c for c in suite if c.op == "avg_pool2d"):
        fields = {k: v for k, v in case.canonical_params().items() if k != "input"}
        program, shapes = build("jax.lax", "avg_pool2d", fields, case.params.input)
        try:
            native = cls.to_native("avg_pool2d", program, shapes)
        except Unsupported as exc:
            said = ("channels-last" if "channels-last" in str(exc) else "ceil_mode" if "ceil_mode" in str(exc)
                    else str(exc), fields.get("layout", "NCHW"))
            assert said in {("channels-last", "NCHW"), ("ceil_mode", "NHWC")}, (case.id, exc)
            refused.add(said[0])
            continue
        back = cls.from_native("avg_pool2d", native, case.params.input)
        assert np.array_equal(average(back, case.params.input), average(fields, case.params.input),
                              equal_nan=True), (case.id, native, back)    # a ceil_mode overhang: padding in flax
        read += 1
    assert read > 0 and refused == {"channels-last", "ceil_mode"}


def average(fields: dict, input_shape) -> np.ndarray:
    """The float64 oracle's average pooling for canonical fields, on a fixed input."""
    spec = ops.get("avg_pool2d")
    params = spec.Params(**fields, input=list(input_shape))
    x = np.random.default_rng(0).standard_normal(spec.shapes(params)["x"])
    return spec.oracle(params.model_dump(), {"x": x})


# ---------------------------------------------------------------- the strategies draw every declared parameter

#: Declared native parameters the strategies never draw, and why. Parameters the adapters accept and drop
#: (``Arg.ignored``: names, dtypes, initializers, regularizers, devices) are left out as a class: they do not
#: change the function, so a round trip has nothing to show for them.
NOT_DRAWN = {
    "divisor_override": "only None (torch, mindspore.nn) / 0 (mindspore.ops) has a canonical form; REFUSED checks "
                        "the others are refused",
    "return_indices": "only False has a canonical form (the indices are not the canonical output)",
    "preferred_element_type": "only None: the accumulation and output dtype are the claim's",
    "batch_group_count": "only 1: groups over the batch have no canonical form; REFUSED checks 2",
    ("AveragePool", "dilations"): "only [1, 1]: the canonical average has no dilation",
}


@pytest.mark.parametrize("surface", SURFACES)
def test_the_strategies_draw_every_declared_native_parameter(surface):
    cls = backend_class(surface)
    for op, inverse in cls.NATIVE.items():
        seen: set = set()

        @settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(native_calls(surface, op))
        def collect(drawn):
            seen.update(drawn[0])

        collect()
        apis = [inverse] + ([inverse.alternative] if inverse.alternative else [])
        missing = [(api.api, name) for api in apis for name, arg in api.schema.items()
                   if name not in seen and not arg.ignored and name not in NOT_DRAWN
                   and (api.api, name) not in NOT_DRAWN]
        assert not missing, f"{surface} {op}: never drawn: {missing}"


def test_mindspore_pad_list_is_the_explicit_padding_and_conflicts_name_it():
    """ops.Conv2DTranspose pads by pad_list when given (MindSpore 2.10's Conv2DBackpropInput; measured on CPU:
    pad=(1, 1, 1, 1) with pad_list=(1, 0, 1, 0) computes the (1, 0, 1, 0) call)."""
    ops_ = backend_class("mindspore.ops")
    base = {"out_channel": 2, "kernel_size": 3, "stride": 2, "input_size": [1, 3, 10, 10]}

    def padding(**native):
        return ops_.from_native("conv2d_transpose", {**base, **native}, [1, 2, 5, 5])["padding"]

    assert padding(pad_mode="pad", pad_list=(1, 0, 1, 0)) == [1, 0, 1, 0] == padding(pad_mode="pad", pad=(1, 0, 1, 0))
    assert padding(pad_mode="pad", pad=[1, 0, 1, 0], pad_list=[1, 0, 1, 0]) == [1, 0, 1, 0]
    assert padding(pad_mode="valid", pad_list=(0, 0, 0, 0)) == "valid"
    for native in ({"pad_mode": "pad", "pad": 1, "pad_list": (1, 0, 1, 0)},
                   {"pad_mode": "valid", "pad_list": (1, 0, 1, 0)}, {"pad_mode": "same", "pad_list": (0, 0, 0, 0)},
                   {"pad_mode": "pad", "pad_list": 1}):
        with pytest.raises(NativeParamError) as info:
            padding(**native)
        assert info.value.param == "pad_list", str(info.value)
