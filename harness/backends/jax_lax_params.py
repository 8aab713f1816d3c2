"""How ``jax.lax`` spells each canonical parameter (``JaxLaxBackend.PARAMETERS``, ``conform mapping``).

Kept apart from the adapter (``jax_lax.py``) so that each stays readable. A
declaration with ``call="conv_general_dilated"`` names a parameter of that
function where the operator's own API (``conv_transpose``) has none.
"""

from __future__ import annotations

from harness.backends.base import NativeParam

_LAYOUT = NativeParam("dimension_numbers", "(lhs_spec, rhs_spec, out_spec), e.g. ('NHWC', 'OIHW', 'NHWC')",
                      "NCHW and NHWC both native; kernel spec 'OIHW'")
_DTYPE = NativeParam(None, "", "the arrays' dtype: float16, bfloat16, float32, float64 (jax_enable_x64)",
                     via="lhs")
_BIAS = NativeParam(None, "", "no bias: jax.numpy.add after the call", emulated=True)

PARAMETERS = {"conv2d_transpose": {
    "x": NativeParam("lhs", "Array in dimension_numbers' lhs_spec order", "", position=0),
    "w": NativeParam("rhs", "Array (C_in, C_out, kh, kw) with rhs_spec 'OIHW'",
                     "with transpose_kernel=True: the forward conv's kernel, flipped and O/I swapped by JAX",
                     position=1),
    "kernel_size": NativeParam(None, "", "no parameter: rhs.shape[2:]", via="rhs"),
    "in_channels": NativeParam(None, "", "no parameter: the input's features (rhs.shape[0])", via="rhs"),
    "out_channels": NativeParam(None, "", "no parameter: rhs.shape[1] (times groups)", via="rhs"),
    "output_shape": NativeParam(None, "", "no parameter: the padding pairs give the size", via="padding"),
    "stride": NativeParam("strides", "sequence of 2 ints", "the input's dilation (fractional stride)"),
    "padding": NativeParam("padding", "[(lo, hi), (lo, hi)]", "zero padding of the stride-dilated input: "
                           "crops (pt, pb) are (K−1−pt, K−1−pb+op), negative beyond K−1"),
    "padding_mode": NativeParam("padding", "'SAME' | 'VALID' | pairs", "'VALID' gives H·s + max(K−s, 0) rows: "
                                "canonical valid only for K ≥ s, else pairs"),
    "output_padding": NativeParam(None, "", "no parameter: the high padding pair grows by it", via="padding"),
    "dilation": NativeParam("rhs_dilation", "sequence of 2 ints", "default 1"),
    "groups": NativeParam("feature_group_count", "int", "conv_transpose has none: a grouped call is "
                          "conv_general_dilated(lhs_dilation=strides, padding pairs, feature_group_count)",
                          call="conv_general_dilated"),
    "bias": _BIAS, "b": _BIAS, "layout": _LAYOUT, "dtype": _DTYPE,
}, "conv2d": {
    "x": NativeParam("lhs", "Array in dimension_numbers' lhs_spec order", "", position=0),
    "w": NativeParam("rhs", "Array (C_out, C_in/groups, kh, kw) with rhs_spec 'OIHW'", "", position=1),
    "kernel_size": NativeParam(None, "", "no parameter: rhs.shape[2:]", via="rhs"),
    "in_channels": NativeParam(None, "", "no parameter: the input's features (rhs.shape[1] · groups)", via="rhs"),
    "out_channels": NativeParam(None, "", "no parameter: rhs.shape[0]", via="rhs"),
    "stride": NativeParam("window_strides", "sequence of 2 ints", ""),
    "padding": NativeParam("padding", "[(lo, hi), (lo, hi)]", "explicit, asymmetric allowed"),
    "padding_mode": NativeParam("padding", "'SAME' | 'VALID' | 'SAME_LOWER' | pairs",
                                "'SAME'/'VALID': TensorFlow's rule (lax.padtype_to_pads)"),
    "dilation": NativeParam("rhs_dilation", "sequence of 2 ints", "default 1"),
    "groups": NativeParam("feature_group_count", "int", "default 1"),
    "bias": _BIAS, "b": _BIAS, "layout": _LAYOUT, "dtype": _DTYPE,
}}
_POOL = {
    "x": NativeParam("operand", "Array (N, C, H, W) or (N, H, W, C)", "any layout: the window is per dimension",
                     position=0),
    "kernel_size": NativeParam("window_dimensions", "one int per dimension", "(1, 1, kh, kw) for NCHW"),
    "stride": NativeParam("window_strides", "one int per dimension", ""),
    "padding_mode": NativeParam("padding", "'SAME' | 'VALID' | pairs", "'SAME': TensorFlow's rule"),
    "padding": NativeParam("padding", "one (lo, hi) pair per dimension", "explicit, asymmetric, any size"),
    "ceil_mode": NativeParam(None, "", "no ceil_mode: the added window's overhang posed as extra bottom/right "
                             "padding", emulated=True),
    "layout": NativeParam(None, "", "no layout parameter: the window tuples follow the array's dimensions",
                          via="window_dimensions"),
    "dtype": NativeParam(None, "", "the array's dtype: float16, bfloat16, float32, float64", via="operand"),
}
PARAMETERS["avg_pool2d"] = {
    **_POOL,
    "count_include_pad": NativeParam(None, "", "no average at all (JAX has no pooling primitive): the sum is "
                                     "divided by a reduce_window count of ones over the input (false) or over "
                                     "input and padding (true)", emulated=True),
}
PARAMETERS["max_pool2d"] = {**_POOL, "dilation": NativeParam("window_dilation", "one int per dimension", "default 1")}
