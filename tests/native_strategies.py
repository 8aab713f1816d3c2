"""Hypothesis strategies for native calls, in each surface's own vocabulary (tests/test_native.py).

Each draws a small geometry and writes it the way a person might: an int or a pair, a default omitted or
written out, TensorFlow's 1/2/4-int lists, MindSpore's pad modes in any case where MindSpore folds it.
Within what the adapter poses natively: e.g. no MindSpore ``pad_mode='pad'`` with zero pads (the adapter
poses that call as ``'valid'``, the same call spelled otherwise).
"""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def spelled(draw, values: list, tuple_ok: bool = True):
    """A pair as an int (when both are equal) or a list/tuple."""
    options = ["list"] + (["tuple"] if tuple_ok else []) + (["int"] if values[0] == values[1] else [])
    how = draw(st.sampled_from(options))
    return values[0] if how == "int" else (tuple(values) if how == "tuple" else list(values))


@st.composite
def put(draw, native: dict, name: str, value, default, pair: bool = True):
    """Set ``name``, or leave it out when it is the default (sometimes)."""
    if value == default and draw(st.booleans()):
        return
    native[name] = draw(spelled(value)) if pair and isinstance(value, list) else value


def _conv_geometry(draw, transposed: bool):
    g = draw(st.integers(1, 2))
    cig, cog = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    eff = [di * (ki - 1) + 1 for ki, di in zip(k, d)]
    return dict(g=g, cin=g * cig, cout=g * cog, cig=cig, cog=cog, n=n, hw=[h, w], k=k, s=s, d=d, eff=eff,
                full=[(x - 1) * si + e for x, si, e in zip([h, w], s, eff)])


def _symmetric_crops(draw, geo) -> tuple[list, list]:
    """Symmetric crops (p, q) and an output_padding that leave an output ≥ 1."""
    pads, op = [], []
    for full, s, d, e in zip(geo["full"], geo["s"], geo["d"], geo["eff"]):
        p = draw(st.integers(0, max(0, min(e - 1, (full - 1) // 2))))
        pads.append(p)
        op.append(draw(st.integers(0, max(s, d) - 1)))
    return pads, op


def _crops(draw, geo) -> list:
    """[top, bottom, left, right] crops leaving an output ≥ 1."""
    out = []
    for full, e in zip(geo["full"], geo["eff"]):
        t = draw(st.integers(0, min(e - 1, full - 1)))
        out += [t, draw(st.integers(0, min(e - 1, full - 1 - t)))]
    return out


def _reachable(draw, geo, form: str, crops=None) -> list:
    """An output size the form reaches (TensorFlow's rule; explicit: with an output_padding < max(s, d))."""
    sizes = []
    for axis, (x, s, d, full) in enumerate(zip(geo["hw"], geo["s"], geo["d"], geo["full"])):
        if form == "same":
            sizes.append(draw(st.integers((x - 1) * s + 1, x * s)))
        elif form == "valid":
            sizes.append(draw(st.integers(full, full + s - 1)))
        else:
            sizes.append(full - crops[2 * axis] - crops[2 * axis + 1] + draw(st.integers(0, max(s, d) - 1)))
    return sizes


def _input(geo, layout: str) -> list:
    h, w = geo["hw"]
    return [geo["n"], h, w, geo["cin"]] if layout == "NHWC" else [geo["n"], geo["cin"], h, w]


# ---------------------------------------------------------------- tf.nn

@st.composite
def tf_ints(draw, values: list, layout: str):
    forms = ["2", "4"] + (["int", "1"] if values[0] == values[1] else [])
    how = draw(st.sampled_from(forms))
    if how == "int":
        return values[0]
    if how == "1":
        return [values[0]]
    if how == "2":
        return list(values)
    return [1, *values, 1] if layout == "NHWC" else [1, 1, *values]


def _tf_padding(draw, geo, layout, transposed):
    form = draw(st.sampled_from(["SAME", "VALID", "explicit"]))
    if form != "explicit":
        return form, None
    crops = _crops(draw, geo) if transposed else [draw(st.integers(0, 3)) for _ in range(4)]
    t, b, le, r = crops
    return ([[0, 0], [t, b], [le, r], [0, 0]] if layout == "NHWC" else [[0, 0], [0, 0], [t, b], [le, r]]), crops


@st.composite
def tf_nn(draw, op: str):
    layout = draw(st.sampled_from(["NHWC", "NCHW"]))
    native = {}
    if op in ("avg_pool2d", "max_pool2d"):
        geo = _conv_geometry(draw, False)
        padding = draw(st.sampled_from(["SAME", "VALID"] + (["explicit"] if op == "max_pool2d" else [])))
        if padding == "explicit":
            t, b, le, r = [draw(st.integers(0, k - 1)) for k in (geo["k"][0], geo["k"][0], geo["k"][1], geo["k"][1])]
            padding = [[0, 0], [t, b], [le, r], [0, 0]] if layout == "NHWC" else [[0, 0], [0, 0], [t, b], [le, r]]
        native.update(ksize=draw(tf_ints(geo["k"], layout)), strides=draw(tf_ints(geo["s"], layout)), padding=padding)
    else:
        transposed = op == "conv2d_transpose"
        geo = _conv_geometry(draw, transposed)
        padding, crops = _tf_padding(draw, geo, layout, transposed)
        native.update(strides=draw(tf_ints(geo["s"], layout)), padding=padding)
        kh, kw = geo["k"]
        if transposed:
            oh, ow = _reachable(draw, geo, padding.lower() if crops is None else "explicit", crops)
            native["filters"] = [kh, kw, geo["cog"], geo["cin"]]
            native["output_shape"] = ([geo["n"], oh, ow, geo["cout"]] if layout == "NHWC"
                                      else [geo["n"], geo["cout"], oh, ow])
        else:
            native["filters"] = [kh, kw, geo["cig"], geo["cout"]]
        if geo["d"] != [1, 1] or draw(st.booleans()):
            native["dilations"] = draw(tf_ints(geo["d"], layout))
    if layout == "NCHW" or draw(st.booleans()):
        native["data_format"] = layout
    if draw(st.booleans()):
        native["name"] = "layer"
    return native, _input(geo, layout)


# ---------------------------------------------------------------- torch

@st.composite
def torch_surface(draw, op: str, module: bool):
    geo = _conv_geometry(draw, op == "conv2d_transpose")
    native = {}
    if op in ("avg_pool2d", "max_pool2d"):
        native["kernel_size"] = draw(spelled(geo["k"]))
        if draw(st.booleans()):
            native["stride"] = draw(spelled(geo["s"]))
        draw(put(native, "padding", [draw(st.integers(0, k // 2)) for k in geo["k"]], [0, 0]))
        draw(put(native, "ceil_mode", draw(st.booleans()), False))
        if op == "avg_pool2d":
            draw(put(native, "count_include_pad", draw(st.booleans()), True))
        else:
            draw(put(native, "dilation", geo["d"], [1, 1]))
        return native, _input(geo, "NCHW")
    kh, kw = geo["k"]
    if op == "conv2d_transpose":
        pads, op_ = _symmetric_crops(draw, geo)
        if module:
            native.update(in_channels=geo["cin"], out_channels=geo["cout"], kernel_size=draw(spelled(geo["k"])))
        else:
            native["weight"] = [geo["cin"], geo["cog"], kh, kw]
        draw(put(native, "padding", pads, [0, 0]))
        if module and draw(st.booleans()):     # the size as forward's output_size: op < stride there
            size = [f - 2 * p + min(o, s - 1) for f, p, o, s in zip(geo["full"], pads, op_, geo["s"])]
            native["output_size"] = size if draw(st.booleans()) else [geo["n"], geo["cout"], *size]
        else:
            draw(put(native, "output_padding", op_, [0, 0]))
    else:
        padding = draw(st.sampled_from(["valid", "explicit"] + (["same"] if geo["s"] == [1, 1] else [])))
        if padding == "explicit":
            padding = draw(spelled([draw(st.integers(0, 2)), draw(st.integers(0, 2))]))
        if module:
            native.update(in_channels=geo["cin"], out_channels=geo["cout"], kernel_size=draw(spelled(geo["k"])))
        else:
            native["weight"] = [geo["cout"], geo["cig"], kh, kw]
        draw(put(native, "padding", padding, 0, pair=False))
    draw(put(native, "stride", geo["s"], [1, 1]))
    draw(put(native, "dilation", geo["d"], [1, 1]))
    draw(put(native, "groups", geo["g"], 1))
    draw(put(native, "bias", draw(st.booleans()), module))
    if module and draw(st.booleans()):
        native["padding_mode"] = "zeros"
    return native, _input(geo, "NCHW")


# ---------------------------------------------------------------- mindspore

@st.composite
def mindspore_nn(draw, op: str):
    geo = _conv_geometry(draw, op == "conv2d_transpose")
    native = {}
    if op in ("avg_pool2d", "max_pool2d"):
        mode = draw(st.sampled_from(["same", "valid", "pad"]))
        native.update(kernel_size=draw(spelled(geo["k"])), stride=draw(spelled(geo["s"])),
                      pad_mode=draw(st.sampled_from([mode, mode.upper()])))
        if mode == "pad":
            limit = [k // 2 for k in geo["k"]]
            pads = [draw(st.integers(0, x)) for x in limit]
            if any(pads):
                native["padding"] = draw(spelled(pads))
            else:
                native["pad_mode"] = "valid"      # zero pads: the adapter poses 'valid'
            if op == "max_pool2d":
                native["pad_mode"] = "pad"
                draw(put(native, "dilation", geo["d"], [1, 1]))
        if native["pad_mode"].lower() != "valid" or op == "max_pool2d":
            if native["pad_mode"].lower() == "pad" or op == "avg_pool2d":
                draw(put(native, "ceil_mode", draw(st.booleans()), False))
        if op == "avg_pool2d":
            draw(put(native, "count_include_pad", draw(st.booleans()), True))
        draw(put(native, "data_format", "NCHW", "NCHW", pair=False))    # written out (NHWC: the adapter permutes)
        return native, _input(geo, "NCHW")
    native.update(in_channels=geo["cin"], out_channels=geo["cout"], kernel_size=draw(spelled(geo["k"])))
    if op == "conv2d":
        draw(put(native, "data_format", "NCHW", "NCHW", pair=False))
    mode = draw(st.sampled_from(["same", "valid", "pad"]))
    if op == "conv2d_transpose":
        crops = _crops(draw, geo)
        if mode == "pad":
            native["padding"] = tuple(crops) if draw(st.booleans()) or len(set(crops)) > 1 else crops[0]
            draw(put(native, "output_padding", [draw(st.integers(0, max(s, d) - 1))
                                                for s, d in zip(geo["s"], geo["d"])], [0, 0]))
    elif mode == "pad":
        native["padding"] = tuple(draw(st.integers(0, 2)) for _ in range(4))
    draw(put(native, "pad_mode", mode, "same", pair=False))
    draw(put(native, "stride", geo["s"], [1, 1]))
    draw(put(native, "dilation", geo["d"], [1, 1]))
    draw(put(native, "group", geo["g"], 1))
    draw(put(native, "has_bias", draw(st.booleans()), False))
    if draw(st.booleans()):
        native["weight_init"] = "normal"
    return native, _input(geo, "NCHW")


@st.composite
def mindspore_ops(draw, op: str):
    geo = _conv_geometry(draw, op == "conv2d_transpose")
    native = {}
    if op in ("avg_pool2d", "max_pool2d"):
        if draw(st.booleans()):     # the primitive: 'same'/'valid' and nothing else
            native.update(kernel_size=draw(spelled(geo["k"])), strides=draw(spelled(geo["s"])),
                          pad_mode=draw(st.sampled_from(["same", "valid", "SAME", "VALID"])))
            draw(put(native, "data_format", "NCHW", "NCHW", pair=False))
            return native, _input(geo, "NCHW")
        native.update(kernel_size=draw(spelled(geo["k"])), stride=draw(spelled(geo["s"])))
        if op == "avg_pool2d":
            pads = [draw(st.integers(0, k // 2)) for k in (geo["k"][0], geo["k"][0], geo["k"][1], geo["k"][1])]
            native["padding"] = tuple(pads) if len(set(pads)) > 1 or draw(st.booleans()) else pads[0]
            native["count_include_pad"] = draw(st.booleans())
        else:
            native["padding"] = draw(spelled([draw(st.integers(0, k // 2)) for k in geo["k"]]))
            draw(put(native, "dilation", geo["d"], [1, 1]))
        native["ceil_mode"] = draw(st.booleans())
        return native, _input(geo, "NCHW")
    mode = draw(st.sampled_from(["same", "valid", "pad"]))
    if op == "conv2d_transpose":
        crops = _crops(draw, geo) if mode == "pad" else None
        oh, ow = _reachable(draw, geo, "explicit" if mode == "pad" else mode, crops)
        native.update(out_channel=geo["cin"], kernel_size=draw(spelled(geo["k"])),
                      input_size=[geo["n"], geo["cout"], oh, ow])
        if mode == "pad":   # MindSpore pads by pad_list when given: pad then is 0 or the same four numbers
            how = draw(st.sampled_from(["pad", "pad_list", "both"]))
            if how != "pad_list":
                native["pad"] = tuple(crops)
            if how != "pad":
                native["pad_list"] = draw(st.sampled_from([tuple(crops), list(crops)]))
        elif mode == "valid" and draw(st.booleans()):
            native["pad_list"] = (0, 0, 0, 0)
        native["pad_mode"] = draw(st.sampled_from([mode, mode.upper()]))
        if draw(st.booleans()):
            native["mode"] = 1
    else:
        native.update(out_channel=geo["cout"], kernel_size=draw(spelled(geo["k"])))
        if mode == "pad":
            native["pad"] = tuple(draw(st.integers(0, 2)) for _ in range(4))
        draw(put(native, "pad_mode", mode, "valid", pair=False))
        if draw(st.booleans()):
            native["mode"] = 1
    draw(put(native, "stride", geo["s"], [1, 1]))
    draw(put(native, "dilation", geo["d"], [1, 1]))
    draw(put(native, "group", geo["g"], 1))
    draw(put(native, "bias_add", draw(st.booleans()), False))
    draw(put(native, "data_format", "NCHW", "NCHW", pair=False))
    return native, _input(geo, "NCHW")


@st.composite
def tf_keras(draw, op: str):
    geo = _conv_geometry(draw, op == "conv2d_transpose")
    layout = draw(st.sampled_from(["NHWC", "NCHW"]))
    fmt = {"NHWC": "channels_last", "NCHW": "channels_first"}[layout]
    native = {}
    padding = draw(st.sampled_from(["same", "valid"]))
    if op in ("avg_pool2d", "max_pool2d"):
        native["pool_size"] = draw(spelled(geo["k"]))
        if draw(st.booleans()):
            native["strides"] = draw(spelled(geo["s"]))
    else:
        if max(geo["s"]) > 1:   # Keras refuses strides > 1 with dilation_rate > 1
            geo["d"] = [1, 1]
            geo["eff"] = geo["k"]
        native.update(filters=geo["cout"] if op == "conv2d" else geo["cog"],
                      kernel_size=draw(spelled(geo["k"])))
        draw(put(native, "strides", geo["s"], [1, 1]))
        draw(put(native, "dilation_rate", geo["d"], [1, 1]))
        draw(put(native, "use_bias", draw(st.booleans()), True))
        if op == "conv2d":
            draw(put(native, "groups", geo["g"], 1))
        else:
            geo["cin"] = geo["cig"]   # Conv2DTranspose has no groups
            if draw(st.booleans()):
                native["output_padding"] = draw(spelled([draw(st.integers(0, s - 1)) for s in geo["s"]]))
        if draw(st.booleans()):
            native["activation"] = draw(st.sampled_from([None, "linear"]))
        if draw(st.booleans()):
            native["kernel_initializer"] = "glorot_uniform"
    draw(put(native, "padding", draw(st.sampled_from([padding, padding.upper()])), "valid", pair=False))
    if layout == "NCHW" or draw(st.booleans()):
        native["data_format"] = fmt
    return native, _input(geo, layout)


@st.composite
def onnxruntime(draw, op: str):
    geo = _conv_geometry(draw, op == "conv2d_transpose")
    native = {}
    mode = draw(st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if op in ("avg_pool2d", "max_pool2d"):
        native.update(kernel_shape=list(geo["k"]), strides=list(geo["s"]))
        if mode == "NOTSET":
            t, b, le, r = [draw(st.integers(0, k - 1)) for k in (geo["k"][0], geo["k"][0], geo["k"][1], geo["k"][1])]
            native["pads"] = [t, le, b, r]
        draw(put(native, "ceil_mode", draw(st.sampled_from([0, 1])), 0, pair=False))
        if op == "avg_pool2d":
            draw(put(native, "count_include_pad", draw(st.sampled_from([0, 1])), 0, pair=False))
        else:
            draw(put(native, "dilations", geo["d"], [1, 1], pair=False))
        draw(put(native, "auto_pad", mode, "NOTSET", pair=False))
        return native, _input(geo, "NCHW")
    kh, kw = geo["k"]
    if op == "conv2d_transpose":
        native["W"] = [geo["cin"], geo["cog"], kh, kw]
        if mode == "NOTSET":
            t, b, le, r = _crops(draw, geo)
            native["pads"] = [t, le, b, r]
            draw(put(native, "output_padding", [draw(st.integers(0, max(s, d) - 1))
                                                for s, d in zip(geo["s"], geo["d"])], [0, 0], pair=False))
        elif draw(st.booleans()):
            native["output_shape"] = _reachable(draw, geo, "valid" if mode == "VALID" else "same")
    else:
        native["W"] = [geo["cout"], geo["cig"], kh, kw]
        if mode == "NOTSET":
            native["pads"] = [draw(st.integers(0, 2)) for _ in range(4)]
    draw(put(native, "auto_pad", mode, "NOTSET", pair=False))
    if draw(st.booleans()):
        native["kernel_shape"] = [kh, kw]
    draw(put(native, "strides", geo["s"], [1, 1], pair=False))
    draw(put(native, "dilations", geo["d"], [1, 1], pair=False))
    draw(put(native, "group", geo["g"], 1, pair=False))
    draw(put(native, "B", draw(st.booleans()), False, pair=False))
    return native, _input(geo, "NCHW")


def native(surface: str, op: str):
    """(native parameters, input shape in the native layout) for ``surface``'s ``op``."""
    if surface == "jax.lax":
        from native_strategies_jax import jax_lax     # it builds on this module's geometry
        return jax_lax(op)
    return {"tf.nn": lambda: tf_nn(op), "torch.functional": lambda: torch_surface(op, False),
            "torch.nn": lambda: torch_surface(op, True), "mindspore.nn": lambda: mindspore_nn(op),
            "mindspore.ops": lambda: mindspore_ops(op), "tf.keras": lambda: tf_keras(op),
            "onnxruntime": lambda: onnxruntime(op)}[surface]()
