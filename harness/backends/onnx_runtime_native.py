"""ONNX's native vocabulary (a node's attributes, and its inputs by shape) and the inverse of the
``onnxruntime`` adapter's mapping (Note [Native vocabularies] in ``harness/native.py``), as opset 22 (the
version opset 26 resolves the four operators to) defines it in ``onnx/defs/nn/defs.cc``.

Attributes are lists (``strides: [2, 2]``); ``pads`` is ``[top, left, bottom, right]`` (every axis's
begin, then every end), used only with ``auto_pad='NOTSET'`` (the default); ``SAME_UPPER`` is the
canonical ``same``, ``SAME_LOWER`` ``same_lower``. ``W`` is given by its shape (``ConvTranspose``:
``(C_in, C_out/group, kh, kw)``, ``Conv``: ``(C_out, C_in/group, kh, kw)``; ``kernel_shape``, if given, must
be its spatial part), ``B`` as true/false. ``ceil_mode`` and ``count_include_pad`` are ints 0/1. A
``ConvTranspose`` ``output_shape`` with ``auto_pad='NOTSET'`` makes ONNX ignore ``pads`` and split the
padding by a rule of its own, which conform does not establish: refused. ``MaxPool``'s ``storage_order``
only orders the ``Indices`` output: accepted and dropped; pooling ``dilations`` other than 1 on
``AveragePool`` are refused (the canonical average has none).
"""

from __future__ import annotations

from harness.backends.base import NativeParamError
from harness.native import (REQUIRED, Arg, Inverse, anything, boolean, channels, choice, expect, find_call, integer,
                            ints, only, plain, shape_of)

AUTO_PAD = choice("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
FORM = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}
PAIR = ints(2, 1, scalar=False)
PADS = ints(4, 0, scalar=False)


def flag(name, value):
    """ONNX's int booleans: 0 or 1."""
    if isinstance(value, bool) or value not in (0, 1):
        raise NativeParamError(name, f"expected the int 0 or 1, got {value!r}")
    return value


def padding(n: dict):
    """auto_pad and pads as the canonical padding."""
    if n["auto_pad"] != "NOTSET":
        expect("pads", not any(n["pads"]), f"{n['pads']} with auto_pad={n['auto_pad']!r}: ONNX takes pads only "
                                           "with 'NOTSET'")
        return FORM[n["auto_pad"]]
    t, left, b, r = n["pads"]
    return [t, b, left, r]


def _kernel(n: dict, weight: list) -> list:
    if n["kernel_shape"] is not None:
        expect("kernel_shape", n["kernel_shape"] == weight[2:], f"{n['kernel_shape']} must be W's spatial shape "
                                                                f"{weight[2:]}")
    return weight[2:]


def _conv_schema(transposed: bool) -> dict:
    schema = {"W": Arg(ints(4, 1, scalar=False), REQUIRED), "B": Arg(boolean, False),
              "auto_pad": Arg(AUTO_PAD, "NOTSET"), "dilations": Arg(PAIR, [1, 1]), "group": Arg(integer(1), 1),
              "kernel_shape": Arg(PAIR, None), "pads": Arg(PADS, [0, 0, 0, 0]), "strides": Arg(PAIR, [1, 1])}
    if transposed:
        schema.update(output_padding=Arg(ints(2, 0, scalar=False), [0, 0]),
                      output_shape=Arg(ints(2, 1, scalar=False), None))
    return schema


def _complete_kernel(native: dict) -> dict:
    if native.get("kernel_shape") is None and "W" in native:
        native["kernel_shape"] = list(native["W"][2:])
    return native


def _transpose_canonical(n: dict, input_shape: list) -> dict:
    w = n["W"]
    expect("W", w[0] == input_shape[1], f"W.shape[0] = {w[0]} must equal the input's channels {input_shape[1]}")
    if n["output_shape"] is not None:
        expect("output_shape", n["auto_pad"] != "NOTSET", "with auto_pad 'NOTSET' ONNX ignores pads and splits "
                                                          "the padding its own way: give auto_pad, or pads with "
                                                          "output_padding")
    return dict(out_channels=w[1] * n["group"], kernel_size=_kernel(n, w), stride=n["strides"], padding=padding(n),
                output_padding=n["output_padding"], dilation=n["dilations"], groups=n["group"], bias=n["B"],
                output_shape=n["output_shape"], layout="NCHW")


def _conv_canonical(n: dict, input_shape: list) -> dict:
    w = n["W"]
    expect("W", w[1] * n["group"] == channels(input_shape, "NCHW"),
           f"W.shape[1]·group = {w[1] * n['group']} must equal the input's channels {input_shape[1]}")
    return dict(out_channels=w[0], kernel_size=_kernel(n, w), stride=n["strides"], padding=padding(n),
                dilation=n["dilations"], groups=n["group"], bias=n["B"], layout="NCHW")


def _read(with_weight: bool):
    def read(program, shapes: dict) -> dict:
        node = find_call(program, "onnx.helper.make_node")
        out = {k: plain(v) for k, v in node.kwargs.items()}
        if with_weight:
            out.update(W=shape_of(shapes, "w"), B="B" in node.args[1])
        return out
    return read


def _pool(op: str) -> Inverse:
    schema = {"auto_pad": Arg(AUTO_PAD, "NOTSET"), "ceil_mode": Arg(flag, 0), "kernel_shape": Arg(PAIR, REQUIRED),
              "pads": Arg(PADS, [0, 0, 0, 0]), "strides": Arg(PAIR, [1, 1])}
    if op == "avg_pool2d":
        schema.update(count_include_pad=Arg(flag, 0),
                      dilations=Arg(only([1, 1], "the canonical average has no dilation"), [1, 1]))
    else:
        schema.update(dilations=Arg(PAIR, [1, 1]), storage_order=Arg(anything, None, ignored=True))

    def canonical(n: dict, input_shape: list) -> dict:
        fields = dict(kernel_size=n["kernel_shape"], stride=n["strides"], padding=padding(n),
                      ceil_mode=bool(n["ceil_mode"]), layout="NCHW")
        if op == "avg_pool2d":
            fields["count_include_pad"] = bool(n["count_include_pad"])
        else:
            fields["dilation"] = n["dilations"]
        return fields

    return Inverse("AveragePool" if op == "avg_pool2d" else "MaxPool", schema, canonical, _read(False))


NATIVE = {
    "conv2d_transpose": Inverse("ConvTranspose", _conv_schema(True), _transpose_canonical, _read(True),
                                _complete_kernel),
    "conv2d": Inverse("Conv", _conv_schema(False), _conv_canonical, _read(True), _complete_kernel),
    "avg_pool2d": _pool("avg_pool2d"),
    "max_pool2d": _pool("max_pool2d"),
}
