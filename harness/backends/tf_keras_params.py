"""How Keras 3's layers spell each canonical parameter: ``TfKerasBackend.PARAMETERS`` (``conform mapping``).

Constructor arguments are ``call="api"``, the built layer's call ``call="forward"``; the weights are no
argument of either: ``Layer.set_weights`` loads them after ``build`` (``call="weights"``).
"""

from __future__ import annotations

from harness.backends.base import NativeParam

_LAYOUT = NativeParam("data_format", "'channels_last' | 'channels_first'", "the case layout (NHWC | NCHW); "
                      "default: keras.config.image_data_format()")
_DTYPE = NativeParam("dtype", "str or DTypePolicy", "the layer's dtype policy: float16, bfloat16, float32, float64")
_NAME = NativeParam("name", "str", "the layer's name; no effect on values")
_X = NativeParam("inputs", "Tensor (N, H, W, C) or (N, C, H, W)", "in data_format order", position=0, call="forward")

_CONV = {
    "x": _X,
    "kernel_size": NativeParam("kernel_size", "int or (kh, kw)", "", position=1),
    "stride": NativeParam("strides", "int or (sh, sw)", "default 1; > 1 refused with dilation_rate > 1"),
    "dilation": NativeParam("dilation_rate", "int or (dh, dw)", "default 1; > 1 refused with strides > 1"),
    "in_channels": NativeParam(None, "", "no parameter: the input's channels, fixed at build", via="inputs"),
    "out_channels": NativeParam("filters", "int", "", position=0),
    "bias": NativeParam("use_bias", "bool", "default True"),
    "layout": _LAYOUT,
    "dtype": _DTYPE,
    "name": _NAME,
}

PARAMETERS = {
    "conv2d_transpose": {
        **_CONV,
        "w": NativeParam("weights", "[kernel (kh, kw, C_out, C_in), bias]", "Layer.set_weights after build",
                         call="weights"),
        "b": NativeParam("weights", "[kernel, bias (C_out,)]", "Layer.set_weights after build", call="weights"),
        "output_shape": NativeParam(None, "", "no output_shape: a reachable one is the output_padding it implies "
                                    "(Keras' size rule)", emulated=True),
        "padding": NativeParam(None, "", "no explicit padding: 'valid', then a Cropping2D layer", emulated=True),
        "padding_mode": NativeParam("padding", "'same' | 'valid'", "canonical 'valid' is output_padding=0 (None "
                                    "gives (H−1)·s + max(K, s)); size_rule 'keras' is padding + output_padding"),
        "output_padding": NativeParam("output_padding", "int or (oh, ow)", "0 ≤ op < strides; with 'same'/'valid' "
                                      "it sizes by Keras' rule (size_rule 'keras'); default None"),
        "groups": NativeParam(None, "", "no groups in Conv2DTranspose: unsupported"),
    },
    "conv2d": {
        **_CONV,
        "w": NativeParam("weights", "[kernel (kh, kw, C_in/groups, C_out), bias]", "Layer.set_weights after build",
                         call="weights"),
        "b": NativeParam("weights", "[kernel, bias (C_out,)]", "Layer.set_weights after build", call="weights"),
        "padding": NativeParam(None, "", "no explicit padding: a ZeroPadding2D layer, then 'valid'", emulated=True),
        "padding_mode": NativeParam("padding", "'same' | 'valid'", "TensorFlow's rule (Keras calls tf.nn)"),
        "groups": NativeParam("groups", "int", "C_in and C_out divisible by groups"),
    },
    "avg_pool2d": {
        "x": _X,
        "kernel_size": NativeParam("pool_size", "int or (kh, kw)", ""),
        "stride": NativeParam("strides", "int or (sh, sw)", "default: pool_size"),
        "padding_mode": NativeParam("padding", "'same' | 'valid'", "'same' excludes the padding from the average"),
        "padding": NativeParam(None, "", "no explicit padding: the mode that pads the same, or (zeros counted) a "
                               "ZeroPadding2D layer, else unsupported", emulated=True),
        "ceil_mode": NativeParam(None, "", "no ceil_mode: posed without it where it adds no window, else "
                                 "unsupported", emulated=True),
        "count_include_pad": NativeParam(None, "", "none: 'same' never counts its padding; true is a ZeroPadding2D "
                                         "layer where a window reaches padding", emulated=True),
        "layout": _LAYOUT,
        "dtype": _DTYPE,
        "name": _NAME,
    },
}
PARAMETERS["max_pool2d"] = {
    **{k: v for k, v in PARAMETERS["avg_pool2d"].items() if k not in ("count_include_pad", "padding")},
    "padding": NativeParam(None, "", "no explicit padding: the mode that pads the same, or a ZeroPadding2D layer "
                           "no window reaches; no layer pads with −∞: else unsupported", emulated=True),
    "dilation": NativeParam(None, "", "no dilation: unsupported"),
}
