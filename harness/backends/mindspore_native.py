"""MindSpore's native vocabularies (``mindspore.nn`` cells and ``mindspore.ops`` primitives) and the inverse of
both adapters' mappings (Note [Native vocabularies] in ``harness/native.py``), as MindSpore 2.10 spells them.

Conventions (read in ``mindspore/nn/layer/conv.py``, ``pooling.py``, ``mindspore/ops/operations/nn_ops.py``):
``pad_mode`` ``'same'|'valid'|'pad'``: exact lower case for the cells' convolutions and ``ops.Conv2D``,
any case for ``ops.Conv2DTranspose`` and the pooling cells and primitives (normalised to lower case, the
primitives' ``'SAME'``/``'VALID'`` to upper case). A convolution's ``padding``/``pad`` is an int or
``(top, bottom, left, right)``, non-zero only with ``pad_mode='pad'`` (MindSpore refuses it otherwise); a
pooling cell's is an int or ``(ph, pw)``, symmetric. ``weight_init``/``bias_init`` and ``dtype`` do not change
the function (conform supplies the operands): accepted and dropped. ``Conv2dTranspose`` has no
``data_format``; the others' ``'NHWC'`` is read as the canonical layout (the CPU build refuses it, conform
permutes).

``ops.Conv2DTranspose(out_channel, kernel_size, ...)(out_backprop, filter, input_size)``: ``out_channel``
is the input's channels (the forward conv's output), ``input_size`` ``(N, C_out, H_out, W_out)`` the
canonical ``output_shape`` and ``out_channels``. Its ``pad_list`` ``(top, bottom, left, right)``, when given,
is what MindSpore pads by (``Conv2DBackpropInput``'s infer takes it over ``pad``): with ``pad_mode='pad'``
it is the explicit padding (``pad`` must then be 0 or the same four numbers), with ``'valid'`` only zeros
(measured: other pads make the CPU kernel fail), never with ``'same'``. The primitives have no bias: ``bias_add: true`` says that
``ops.BiasAdd()(y, bias)`` follows, as the cells do. ``ops.AvgPool``/``ops.MaxPool`` (``strides``,
``pad_mode``) and ``ops.avg_pool2d``/``ops.max_pool2d`` (``stride``, ``padding``, ``ceil_mode``, ...) are
two APIs for the same operator: a call naming a parameter only the functions have is read as the function.
"""

from __future__ import annotations

from harness.native import (REQUIRED, Arg, Inverse, anything, applied, boolean, channels, choice, expect,
                            find_call, has_call, integer, ints, only, pair, plain, symmetric)

IGNORED = Arg(anything, None, ignored=True)
CONV_MODE = choice("same", "valid", "pad")
ANY_CASE_MODE = choice("same", "valid", "pad", fold_case=True)
PRIMITIVE_MODE = choice("SAME", "VALID", fold_case=True)
PADS4 = ints(4, 0)
LAYOUT = choice("NCHW", "NHWC")


def conv_padding(mode: str, pads: list, name: str = "padding"):
    """``pad_mode`` and its pads as the canonical padding."""
    if mode != "pad":
        expect(name, not any(pads), f"{pads} with pad_mode={mode!r}: MindSpore takes padding only with 'pad'")
        return mode
    return pads


def _pool_padding(mode: str, pads: list, name: str = "padding"):
    if mode.lower() != "pad":
        expect(name, not any(pads), f"{pads} with pad_mode={mode!r}: MindSpore takes padding only with 'pad'")
        return mode.lower()
    return pads


# ---------------------------------------------------------------- mindspore.nn

def _cell_transpose_canonical(n: dict, input_shape: list) -> dict:
    expect("in_channels", n["in_channels"] == input_shape[1],
           f"in_channels = {n['in_channels']} must equal the input's channels {input_shape[1]}")
    return dict(out_channels=n["out_channels"], kernel_size=n["kernel_size"], stride=n["stride"],
                padding=conv_padding(n["pad_mode"], n["padding"]), output_padding=n["output_padding"],
                dilation=n["dilation"], groups=n["group"], bias=n["has_bias"], output_shape=None, layout="NCHW")


def _cell_conv_canonical(n: dict, input_shape: list) -> dict:
    c = channels(input_shape, n["data_format"])
    expect("in_channels", n["in_channels"] == c, f"in_channels = {n['in_channels']} must equal the input's "
                                                 f"channels {c}")
    return dict(out_channels=n["out_channels"], kernel_size=n["kernel_size"], stride=n["stride"],
                padding=conv_padding(n["pad_mode"], n["padding"]), dilation=n["dilation"], groups=n["group"],
                bias=n["has_bias"], layout=n["data_format"])


def _cell_read(cell: str):
    def read(program, shapes: dict) -> dict:
        ctor = find_call(program, cell)
        keys = ("kernel_size", "stride", "pad_mode", "padding", "output_padding", "dilation", "group", "has_bias")
        return dict(in_channels=ctor.args[0], out_channels=ctor.args[1],
                    **{k: plain(ctor.kwargs[k]) for k in keys if k in ctor.kwargs})
    return read


def _cell_schema(transposed: bool) -> dict:
    schema = {"in_channels": Arg(integer(1), REQUIRED), "out_channels": Arg(integer(1), REQUIRED),
              "kernel_size": Arg(pair(1), REQUIRED), "stride": Arg(pair(1), 1), "pad_mode": Arg(CONV_MODE, "same"),
              "padding": Arg(PADS4, 0)}
    if transposed:
        schema["output_padding"] = Arg(pair(0), 0)
    schema.update(dilation=Arg(pair(1), 1), group=Arg(integer(1), 1), has_bias=Arg(boolean, False),
                  weight_init=IGNORED, bias_init=IGNORED, dtype=IGNORED)
    if not transposed:
        schema["data_format"] = Arg(LAYOUT, "NCHW")
    return schema


def _cell_pool(op: str, cell: str) -> Inverse:
    schema = {"kernel_size": Arg(pair(1), 1), "stride": Arg(pair(1), 1), "pad_mode": Arg(ANY_CASE_MODE, "valid"),
              "padding": Arg(pair(0), 0)}
    if op == "avg_pool2d":
        schema.update(ceil_mode=Arg(boolean, False), count_include_pad=Arg(boolean, True),
                      divisor_override=Arg(only(None, "a fixed divisor has no canonical form"), None))
    else:
        schema.update(dilation=Arg(pair(1), 1), return_indices=Arg(only(False, "the indices are not part of the "
                                                                           "canonical output"), False),
                      ceil_mode=Arg(boolean, False))
    schema["data_format"] = Arg(LAYOUT, "NCHW")

    def canonical(n: dict, input_shape: list) -> dict:
        mode = n["pad_mode"]
        fields = dict(kernel_size=n["kernel_size"], stride=n["stride"],
                      padding=symmetric(n["padding"]) if mode == "pad" else _pool_padding(mode, n["padding"]),
                      ceil_mode=n["ceil_mode"], layout=n["data_format"])
        if op == "avg_pool2d":
            fields["count_include_pad"] = n["count_include_pad"]
        else:
            if mode != "pad":
                expect("dilation", n["dilation"] == [1, 1], "MaxPool2d takes dilation only with pad_mode='pad'")
                expect("ceil_mode", not n["ceil_mode"], "MaxPool2d takes ceil_mode only with pad_mode='pad'")
            fields["dilation"] = n["dilation"]
        return fields

    def read(program, shapes: dict) -> dict:
        kw = find_call(program, cell).kwargs
        return {k: plain(v) for k, v in kw.items()}

    return Inverse(cell, schema, canonical, read)


CELLS = {
    "conv2d_transpose": Inverse("mindspore.nn.Conv2dTranspose", _cell_schema(True), _cell_transpose_canonical,
                                _cell_read("mindspore.nn.Conv2dTranspose")),
    "conv2d": Inverse("mindspore.nn.Conv2d", _cell_schema(False), _cell_conv_canonical,
                      _cell_read("mindspore.nn.Conv2d")),
    "avg_pool2d": _cell_pool("avg_pool2d", "mindspore.nn.AvgPool2d"),
    "max_pool2d": _cell_pool("max_pool2d", "mindspore.nn.MaxPool2d"),
}


# ---------------------------------------------------------------- mindspore.ops

def _primitive_schema(transposed: bool) -> dict:
    schema = {"out_channel": Arg(integer(1), REQUIRED), "kernel_size": Arg(pair(1), REQUIRED),
              "pad_mode": Arg(ANY_CASE_MODE if transposed else CONV_MODE, "valid"), "pad": Arg(PADS4, 0)}
    if transposed:
        schema["pad_list"] = Arg(ints(4, 0, scalar=False), None)
    schema.update(mode=Arg(only(1, "mode 1 is the convolution; MindSpore's other modes are not"), 1),
                  stride=Arg(pair(1), 1), dilation=Arg(pair(1), 1), group=Arg(integer(1), 1),
                  data_format=Arg(LAYOUT, "NCHW"), bias_add=Arg(boolean, False))
    if transposed:
        schema["input_size"] = Arg(ints(4, 0, scalar=False), REQUIRED)
    return schema


def _fold_pad_list(n: dict) -> dict:
    """``pad_list`` as the ``pad`` it means (another spelling of the same pads); a conflict names it."""
    pad_list, mode = n.get("pad_list"), n["pad_mode"]
    if pad_list is None:
        return n
    if mode == "pad":
        expect("pad_list", not any(n["pad"]) or n["pad"] == pad_list,
               f"{pad_list} conflicts with pad={n['pad']}: MindSpore pads by pad_list and ignores pad")
        n["pad"] = pad_list
    else:
        expect("pad_list", mode == "valid" and not any(pad_list),
               f"{pad_list} with pad_mode={mode!r}: MindSpore takes pads in pad_list only with pad_mode='pad' "
               "(zeros with 'valid')")
    n["pad_list"] = None
    return n


def _prim_transpose_canonical(n: dict, input_shape: list) -> dict:
    layout = n["data_format"]
    c = channels(input_shape, layout)
    expect("out_channel", n["out_channel"] == c, f"out_channel = {n['out_channel']} (the forward conv's output "
                                                 f"channels) must equal the input's channels {c}")
    batch, c_out, oh, ow = n["input_size"]
    expect("input_size", batch == input_shape[0], f"the batch {batch} must equal the input's {input_shape[0]}")
    return dict(out_channels=c_out, kernel_size=n["kernel_size"], stride=n["stride"],
                padding=conv_padding(n["pad_mode"], n["pad"], "pad"), output_padding=[0, 0], dilation=n["dilation"],
                groups=n["group"], bias=n["bias_add"], output_shape=[oh, ow], layout=layout)


def _prim_conv_canonical(n: dict, input_shape: list) -> dict:
    return dict(out_channels=n["out_channel"], kernel_size=n["kernel_size"], stride=n["stride"],
                padding=conv_padding(n["pad_mode"], n["pad"], "pad"), dilation=n["dilation"], groups=n["group"],
                bias=n["bias_add"], layout=n["data_format"])


def _prim_read(primitive: str, transposed: bool):
    def read(program, shapes: dict) -> dict:
        ctor = find_call(program, primitive)
        out = dict(out_channel=ctor.args[0], kernel_size=plain(ctor.args[1]),
                   **{k: plain(v) for k, v in ctor.kwargs.items()},
                   bias_add=has_call(program, "mindspore.ops.BiasAdd"))
        if transposed:
            out["input_size"] = plain(applied(program, primitive).args[2])
        return out
    return read


def _ops_pool(op: str) -> Inverse:
    name = {"avg_pool2d": "AvgPool", "max_pool2d": "MaxPool"}[op]
    primitive, function = f"mindspore.ops.{name}", f"mindspore.ops.{op}"

    def extra(fields: dict) -> dict:
        if op == "avg_pool2d":
            return {"count_include_pad": fields.get("count_include_pad", False)}
        return {"dilation": fields.get("dilation", [1, 1])}

    def canonical_primitive(n: dict, input_shape: list) -> dict:
        return dict(kernel_size=n["kernel_size"], stride=n["strides"], padding=n["pad_mode"].lower(),
                    ceil_mode=False, layout=n["data_format"], **extra({}))

    def canonical_function(n: dict, input_shape: list) -> dict:
        pads = n["padding"] if op == "avg_pool2d" else symmetric(n["padding"])
        return dict(kernel_size=n["kernel_size"], stride=n["stride"], padding=pads, ceil_mode=n["ceil_mode"],
                    layout="NCHW", **extra(n))

    def read(program, shapes: dict) -> dict:
        call = (find_call(program, function) if has_call(program, function)
                else find_call(program, primitive))
        return {k: plain(v) for k, v in call.kwargs.items()}

    if op == "avg_pool2d":
        fn_schema = {"kernel_size": Arg(pair(1), 1), "stride": Arg(pair(1), 1), "padding": Arg(PADS4, 0),
                     "ceil_mode": Arg(boolean, False), "count_include_pad": Arg(boolean, True),
                     "divisor_override": Arg(only(0, "a fixed divisor has no canonical form (0: none)"), 0)}
    else:
        fn_schema = {"kernel_size": Arg(pair(1), REQUIRED), "stride": Arg(pair(1), None), "padding": Arg(pair(0), 0),
                     "dilation": Arg(pair(1), 1), "return_indices": Arg(only(False, "the indices are not part of "
                                                                                "the canonical output"), False),
                     "ceil_mode": Arg(boolean, False)}

    def complete(native: dict) -> dict:
        if native.get("stride", 0) is None:
            native["stride"] = list(native["kernel_size"])
        return native

    functional = Inverse(function, fn_schema, canonical_function, read, complete)
    only_function = tuple(k for k in fn_schema if k != "kernel_size")
    return Inverse(primitive, {"kernel_size": Arg(pair(1), 1), "strides": Arg(pair(1), 1),
                               "pad_mode": Arg(PRIMITIVE_MODE, "VALID"), "data_format": Arg(LAYOUT, "NCHW")},
                   canonical_primitive, read, alternative=functional, only_alternative=only_function)


PRIMITIVES = {
    "conv2d_transpose": Inverse("mindspore.ops.Conv2DTranspose", _primitive_schema(True), _prim_transpose_canonical,
                                _prim_read("mindspore.ops.Conv2DTranspose", True), _fold_pad_list),
    "conv2d": Inverse("mindspore.ops.Conv2D", _primitive_schema(False), _prim_conv_canonical,
                      _prim_read("mindspore.ops.Conv2D", False)),
    "avg_pool2d": _ops_pool("avg_pool2d"),
    "max_pool2d": _ops_pool("max_pool2d"),
}
