"""``tf.nn``'s native vocabulary and the inverse of its adapter's mapping (Note [Native vocabularies] in
``harness/native.py``): ``conv2d_transpose``, ``conv2d``, ``avg_pool2d``, ``max_pool2d`` as TensorFlow
spells them, read as canonical fields and read back from the adapter's programs.

TensorFlow's conventions (``tensorflow/python/ops/nn_ops.py``, ``_get_sequence``): ``strides``,
``dilations`` and ``ksize`` are an int (both spatial axes), or 1, 2 or 4 ints (4: in ``data_format``
order, 1 on N and C: TF's kernels refuse anything else). ``padding`` is ``'SAME'``, ``'VALID'`` (upper
case: the op's attribute) or the explicit list ``[[0, 0], [t, b], [l, r], [0, 0]]`` (NHWC; NCHW:
``[[0, 0], [0, 0], [t, b], [l, r]]``). The filters are given by their shape: ``conv2d_transpose``
``(kh, kw, C_out/groups, C_in)``, groups being output_shape's C / ``filters.shape[2]``; ``conv2d``
``(kh, kw, C_in/groups, C_out)``, groups the input's channels / ``filters.shape[2]``. tf.nn has no bias:
a claim's tf.nn side has none.
"""

from __future__ import annotations

from harness.backends.base import NativeParamError
from harness.native import (REQUIRED, Arg, Inverse, anything, channels, choice, expect, find_call, ints,
                            plain, shape_of)


def tf_ints(name, value):
    """An int, or 1, 2 or 4 ints ≥ 1 (the spatial pair is taken in ``complete``, which knows data_format)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (list, tuple)) and len(value) in (1, 2, 4):
        values = ints(len(value), 1, scalar=False)(name, value)
        return values * 2 if len(values) == 1 else values
    raise NativeParamError(name, f"expected an int or a list of 1, 2 or 4 ints, got {value!r}")


def explicit(name, value):
    """TF's explicit padding: 4 pairs of ints ≥ 0, in data_format order (checked in ``complete``)."""
    pairs = value if isinstance(value, (list, tuple)) else None
    if pairs is None or len(pairs) != 4:
        raise NativeParamError(name, f"expected 'SAME', 'VALID' or 4 [before, after] pairs, got {value!r}")
    return [ints(2, 0, scalar=False)(name, p) for p in pairs]


def tf_padding(name, value):
    """'SAME', 'VALID' (TF's attribute is upper case) or the explicit list."""
    if isinstance(value, str):
        return choice("SAME", "VALID")(name, value)
    return explicit(name, value)
MODE = choice("SAME", "VALID")
DATA_FORMAT = choice("NHWC", "NCHW")
NAME = Arg(anything, None, ignored=True)


def _spatial(native: dict, name: str) -> None:
    """A 4-int list in data_format order -> its spatial pair, after checking N and C are 1."""
    values = native[name]
    if len(values) == 4:
        nc = (values[0], values[3]) if native["data_format"] == "NHWC" else (values[0], values[1])
        expect(name, nc == (1, 1), f"{values} is not 1 on N and C ({native['data_format']}): TensorFlow has no "
                                   "stride or dilation across the batch or channels, nor has the canonical call")
        native[name] = values[1:3] if native["data_format"] == "NHWC" else values[2:4]


def _complete(*names):
    def complete(native: dict) -> dict:
        for name in names:
            _spatial(native, name)
        padding = native.get("padding")
        if isinstance(padding, list):
            zero = (padding[0], padding[3]) if native["data_format"] == "NHWC" else (padding[0], padding[1])
            expect("padding", zero == ([0, 0], [0, 0]), f"{padding} pads N or C ({native['data_format']}): only "
                                                        "the spatial axes can be padded")
        return native
    return complete


def canonical_padding(padding, layout: str):
    """TF's padding as the canonical form: 'same', 'valid' or [top, bottom, left, right]."""
    if isinstance(padding, str):
        return padding.lower()
    (t, b), (left, right) = (padding[1], padding[2]) if layout == "NHWC" else (padding[2], padding[3])
    return [t, b, left, right]


def native_padding(padding):
    return padding if isinstance(padding, str) else plain(padding)


def _hw_shape(layout: str, n: int, c: int, h: int, w: int) -> list[int]:
    return [n, h, w, c] if layout == "NHWC" else [n, c, h, w]


# ---------------------------------------------------------------- conv2d_transpose

def _transpose_canonical(n: dict, input_shape: list) -> dict:
    layout = n["data_format"]
    kh, kw, cog, cin = n["filters"]
    c = channels(input_shape, layout)
    expect("filters", cin == c, f"filters.shape[3] = {cin} must equal the input's channels {c}")
    out = n["output_shape"]
    batch, oc, oh, ow = (out[0], out[3], out[1], out[2]) if layout == "NHWC" else out
    expect("output_shape", batch == input_shape[0], f"the batch {batch} must equal the input's {input_shape[0]}")
    expect("filters", oc % cog == 0, f"output_shape's channels {oc} are not a multiple of filters.shape[2] = "
                                     f"{cog} (TF's groups are their quotient)")
    return dict(out_channels=oc, kernel_size=[kh, kw], stride=n["strides"],
                padding=canonical_padding(n["padding"], layout), output_padding=[0, 0], dilation=n["dilations"],
                groups=oc // cog, bias=False, output_shape=[oh, ow], layout=layout)


def _transpose_read(program, shapes: dict) -> dict:
    kw = find_call(program, "tf.nn.conv2d_transpose").kwargs
    cin, cog, kh, kwidth = shape_of(shapes, "w")
    return dict(filters=[kh, kwidth, cog, cin], output_shape=plain(kw["output_shape"]), strides=plain(kw["strides"]),
                padding=native_padding(kw["padding"]), data_format=kw["data_format"],
                dilations=plain(kw["dilations"]))


CONV2D_TRANSPOSE = Inverse(
    "tf.nn.conv2d_transpose",
    {"filters": Arg(ints(4, 1, scalar=False), REQUIRED), "output_shape": Arg(ints(4, 0, scalar=False), REQUIRED),
     "strides": Arg(tf_ints, REQUIRED), "padding": Arg(tf_padding, "SAME"), "data_format": Arg(DATA_FORMAT, "NHWC"),
     "dilations": Arg(tf_ints, 1), "name": NAME},
    _transpose_canonical, _transpose_read, _complete("strides", "dilations"))


# ---------------------------------------------------------------- conv2d

def _conv_canonical(n: dict, input_shape: list) -> dict:
    layout = n["data_format"]
    kh, kw, cig, cout = n["filters"]
    c = channels(input_shape, layout)
    expect("filters", c % cig == 0, f"the input's channels {c} are not a multiple of filters.shape[2] = {cig} "
                                    "(TF's groups are their quotient)")
    return dict(out_channels=cout, kernel_size=[kh, kw], stride=n["strides"],
                padding=canonical_padding(n["padding"], layout), dilation=n["dilations"], groups=c // cig,
                bias=False, layout=layout)


def _conv_read(program, shapes: dict) -> dict:
    kw = find_call(program, "tf.nn.conv2d").kwargs
    cout, cig, kh, kwidth = shape_of(shapes, "w")
    return dict(filters=[kh, kwidth, cig, cout], strides=plain(kw["strides"]),
                padding=native_padding(kw["padding"]), data_format=kw["data_format"],
                dilations=plain(kw["dilations"]))


CONV2D = Inverse(
    "tf.nn.conv2d",
    {"filters": Arg(ints(4, 1, scalar=False), REQUIRED), "strides": Arg(tf_ints, REQUIRED),
     "padding": Arg(tf_padding, REQUIRED), "data_format": Arg(DATA_FORMAT, "NHWC"), "dilations": Arg(tf_ints, 1),
     "name": NAME},
    _conv_canonical, _conv_read, _complete("strides", "dilations"))


# ---------------------------------------------------------------- pooling

def _pool_canonical(op: str):
    def canonical(n: dict, input_shape: list) -> dict:
        fields = dict(kernel_size=n["ksize"], stride=n["strides"], padding=canonical_padding(n["padding"],
                                                                                         n["data_format"]),
                      ceil_mode=False, layout=n["data_format"])
        if op == "avg_pool2d":
            fields["count_include_pad"] = False   # SAME never counts its padding; VALID has none
        else:
            fields["dilation"] = [1, 1]
        return fields
    return canonical


def _pool_read(fn: str):
    def read(program, shapes: dict) -> dict:
        kw = find_call(program, fn).kwargs
        return dict(ksize=plain(kw["ksize"]), strides=plain(kw["strides"]),
                    padding=native_padding(kw["padding"]), data_format=kw["data_format"])
    return read


def _pool(op: str, padding) -> Inverse:
    fn = f"tf.nn.{op}"
    return Inverse(fn, {"ksize": Arg(tf_ints, REQUIRED), "strides": Arg(tf_ints, REQUIRED),
                        "padding": Arg(padding, REQUIRED), "data_format": Arg(DATA_FORMAT, "NHWC"), "name": NAME},
                   _pool_canonical(op), _pool_read(fn), _complete("ksize", "strides"))


NATIVE = {"conv2d_transpose": CONV2D_TRANSPOSE, "conv2d": CONV2D, "avg_pool2d": _pool("avg_pool2d", MODE),
          "max_pool2d": _pool("max_pool2d", tf_padding)}
