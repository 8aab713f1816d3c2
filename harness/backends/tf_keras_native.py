"""Keras 3's native vocabulary (``keras.layers``) and the inverse of the ``tf.keras`` adapter's mapping (Note
[Native vocabularies] in ``harness/native.py``), as Keras 3.15 spells it.

Conventions (``keras/src/layers/convolutional/base_conv*.py``, ``keras/src/backend/config.py``): sizes are an
int or a pair; ``padding`` ``'same'|'valid'`` and ``data_format`` ``'channels_last'|'channels_first'`` in any
case (Keras lower-cases them); ``data_format`` None is ``keras.config.image_data_format()``, channels_last
unless configured; ``use_bias`` defaults to true; ``strides`` default to ``pool_size`` for pooling.
Initializers, regularizers, constraints, ``name``, ``dtype`` and ``trainable`` do not change the function:
accepted and dropped; an ``activation`` other than None/'linear' is another function (refused), as is
``strides`` > 1 with ``dilation_rate`` > 1 (Keras refuses it).

``Conv2DTranspose``'s ``output_padding`` sizes ``same``/``valid`` by Keras' rule (``size_rule: keras``, Note
[Padding forms] in harness/ops/conv2d_transpose/semantics.py). Its default None is Keras' own size:
``'same'``: ``H·s``, the canonical ``same``; ``'valid'``: ``(H−1)·s + max(K, s)``, which is
``output_padding = max(s − K, 0)`` by the same rule, so ``normalise`` writes it so (the crops are
TensorFlow's for that size either way: Keras calls ``tf.nn.conv_transpose`` with it). A ``valid`` call
with no output padding is the canonical ``valid``.
"""

from __future__ import annotations

from harness.native import REQUIRED, Arg, Inverse, anything, boolean, choice, expect, find_call, integer, pair, plain

IGNORED = Arg(anything, None, ignored=True)
PADDING = choice("same", "valid", fold_case=True)
DATA_FORMAT = choice("channels_last", "channels_first", fold_case=True)
LAYOUT = {"channels_last": "NHWC", "channels_first": "NCHW"}
#: Arguments of every layer that do not change the function it computes.
_INERT = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer", "activity_regularizer",
          "kernel_constraint", "bias_constraint", "name", "dtype", "trainable")


def _activation(name, value):
    return choice("linear")(name, value)


def _conv_schema(transposed: bool) -> dict:
    schema = {"filters": Arg(integer(1), REQUIRED), "kernel_size": Arg(pair(1), REQUIRED),
              "strides": Arg(pair(1), 1), "padding": Arg(PADDING, "valid")}
    if transposed:
        schema["output_padding"] = Arg(pair(0), None)
    schema.update(data_format=Arg(DATA_FORMAT, "channels_last"), dilation_rate=Arg(pair(1), 1))
    if not transposed:
        schema["groups"] = Arg(integer(1), 1)
    schema.update(activation=Arg(_activation, None), use_bias=Arg(boolean, True))
    schema.update({name: IGNORED for name in _INERT})
    return schema


def _no_strided_dilation(native: dict) -> dict:
    expect("dilation_rate", max(native["strides"]) == 1 or max(native["dilation_rate"]) == 1,
           f"{native['dilation_rate']} with strides {native['strides']}: Keras refuses strides > 1 with "
           "dilation_rate > 1")
    if native.get("activation") == "linear":
        native["activation"] = None
    return native


def _transpose_complete(native: dict) -> dict:
    """Keras' default output_padding for 'valid' written out (module docstring)."""
    _no_strided_dilation(native)
    if native["output_padding"] is None and native["padding"] == "valid":
        native["output_padding"] = [max(s - (d * (k - 1) + 1), 0) for k, s, d in zip(
            native["kernel_size"], native["strides"], native["dilation_rate"])]
    return native


def _transpose_canonical(n: dict, input_shape: list) -> dict:
    op = n["output_padding"]
    fields = dict(out_channels=n["filters"], kernel_size=n["kernel_size"], stride=n["strides"], padding=n["padding"],
                  output_padding=[0, 0], dilation=n["dilation_rate"], groups=1, bias=n["use_bias"],
                  output_shape=None, layout=LAYOUT[n["data_format"]])
    if op is not None and any(op) or (op is not None and n["padding"] == "same"):
        fields.update(output_padding=op, size_rule="keras")
    return fields


def _conv_canonical(n: dict, input_shape: list) -> dict:
    return dict(out_channels=n["filters"], kernel_size=n["kernel_size"], stride=n["strides"], padding=n["padding"],
                dilation=n["dilation_rate"], groups=n["groups"], bias=n["use_bias"], layout=LAYOUT[n["data_format"]])


def _layer_read(layer: str, positional: tuple):
    def read(program, shapes: dict) -> dict:
        ctor = find_call(program, layer)
        out = dict(zip(positional, (plain(a) for a in ctor.args)))
        out.update({k: plain(v) for k, v in ctor.kwargs.items()})
        return out
    return read


def _pool(op: str, layer: str) -> Inverse:
    schema = {"pool_size": Arg(pair(1), REQUIRED if op == "avg_pool2d" else 2), "strides": Arg(pair(1), None),
              "padding": Arg(PADDING, "valid"), "data_format": Arg(DATA_FORMAT, "channels_last"),
              "name": IGNORED, "dtype": IGNORED, "trainable": IGNORED}

    def complete(native: dict) -> dict:
        if native["strides"] is None:
            native["strides"] = list(native["pool_size"])
        return native

    def canonical(n: dict, input_shape: list) -> dict:
        fields = dict(kernel_size=n["pool_size"], stride=n["strides"], padding=n["padding"], ceil_mode=False,
                      layout=LAYOUT[n["data_format"]])
        if op == "avg_pool2d":
            fields["count_include_pad"] = False    # 'same' never counts its padding; 'valid' has none
        else:
            fields["dilation"] = [1, 1]
        return fields

    return Inverse(layer, schema, canonical, _layer_read(layer, ()), complete)


NATIVE = {
    "conv2d_transpose": Inverse("keras.layers.Conv2DTranspose", _conv_schema(True), _transpose_canonical,
                                _layer_read("keras.layers.Conv2DTranspose", ("filters", "kernel_size")),
                                _transpose_complete),
    "conv2d": Inverse("keras.layers.Conv2D", _conv_schema(False), _conv_canonical,
                      _layer_read("keras.layers.Conv2D", ("filters", "kernel_size")), _no_strided_dilation),
    "avg_pool2d": _pool("avg_pool2d", "keras.layers.AveragePooling2D"),
    "max_pool2d": _pool("max_pool2d", "keras.layers.MaxPooling2D"),
}
