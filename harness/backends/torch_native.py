"""PyTorch's native vocabularies (``torch.functional`` and ``torch.nn``) and the inverse of both adapters'
mappings (Note [Native vocabularies] in ``harness/native.py``).

torch's conventions (``torch/nn/modules/conv.py``, ``pooling.py``, ``torch/nn/functional.py``): sizes are
an int (both axes) or a pair; ``padding`` an int or pair is symmetric, canonical ``[p, p, q, q]``;
``Conv2d``/``F.conv2d`` also take ``'same'`` (stride 1 only: torch refuses it otherwise) and ``'valid'``.
The functional API's ``weight`` is given by its shape (``conv_transpose2d``: ``(C_in, C_out/groups, kh,
kw)``, ``conv2d``: ``(C_out, C_in/groups, kh, kw)``) and ``bias`` as true/false (the tensor is
conform's). The modules: ``bias`` defaults to true; ``padding_mode`` other than ``'zeros'`` pads with
other values than zeros (no canonical form; ``ConvTranspose2d`` refuses it anyway);
``ConvTranspose2d.forward``'s ``output_size`` (2 ints, or 4 with N and C, which torch ignores) is the
canonical ``output_shape``, and torch then ignores ``output_padding`` (``_output_padding``), so giving
both is refused rather than guessed. Pooling: ``stride`` defaults to the kernel;
``divisor_override`` and ``return_indices=True`` have no canonical form.
"""

from __future__ import annotations

from harness.backends.base import NativeParamError
from harness.native import (REQUIRED, Arg, Inverse, anything, applied, boolean, choice, either, expect, find_call,
                            integer, ints, only, pair, plain, shape_of, symmetric)

NCHW = "NCHW"
CONV_PADDING = either(choice("same", "valid"), pair(0))
IGNORED = Arg(anything, None, ignored=True)


def output_size(name, value):
    if isinstance(value, (list, tuple)) and len(value) == 4:
        value = list(value)[2:]       # torch keeps the spatial sizes of an (N, C, H, W) output_size
    return ints(2, 1, scalar=False)(name, value)


def conv_padding(native: dict):
    padding, stride = native["padding"], native["stride"]
    if padding == "same":
        expect("padding", stride == [1, 1], f"'same' with stride {stride}: torch refuses it for strided "
                                            "convolutions")
    return padding if isinstance(padding, str) else symmetric(padding)


def _check_channels(name: str, have: int, input_shape: list, what: str) -> None:
    expect(name, have == input_shape[1], f"{what} = {have} must equal the input's channels {input_shape[1]}")


def _pool_fields(op: str, n: dict) -> dict:
    fields = dict(kernel_size=n["kernel_size"], stride=n["stride"], padding=symmetric(n["padding"]),
                  ceil_mode=n["ceil_mode"], layout=NCHW)
    if op == "avg_pool2d":
        fields["count_include_pad"] = n["count_include_pad"]
    else:
        fields["dilation"] = n["dilation"]
    return fields


def _stride_default(native: dict) -> dict:
    if native["stride"] is None:
        native["stride"] = list(native["kernel_size"])
    return native


def _pool_schema(op: str) -> dict:
    schema = {"kernel_size": Arg(pair(1), REQUIRED), "stride": Arg(pair(1), None), "padding": Arg(pair(0), 0)}
    if op == "avg_pool2d":
        schema.update(ceil_mode=Arg(boolean, False), count_include_pad=Arg(boolean, True),
                      divisor_override=Arg(only(None, "a fixed divisor has no canonical form"), None))
    else:
        schema.update(dilation=Arg(pair(1), 1), ceil_mode=Arg(boolean, False),
                      return_indices=Arg(only(False, "the indices are not part of the canonical output"), False))
    return schema


def _pool_kwargs(op: str, kw: dict) -> dict:
    keys = ["kernel_size", "stride", "padding", "ceil_mode"]
    keys += ["count_include_pad"] if op == "avg_pool2d" else ["dilation"]
    return {k: plain(kw[k]) for k in keys if k in kw}


# ---------------------------------------------------------------- torch.functional

def _f_transpose_canonical(n: dict, input_shape: list) -> dict:
    cin, cog, kh, kw = n["weight"]
    _check_channels("weight", cin, input_shape, "weight.shape[0]")
    return dict(out_channels=cog * n["groups"], kernel_size=[kh, kw], stride=n["stride"],
                padding=symmetric(n["padding"]), output_padding=n["output_padding"], dilation=n["dilation"],
                groups=n["groups"], bias=n["bias"], output_shape=None, layout=NCHW)


def _f_conv_canonical(n: dict, input_shape: list) -> dict:
    cout, cig, kh, kw = n["weight"]
    _check_channels("weight", cig * n["groups"], input_shape, "weight.shape[1]·groups")
    return dict(out_channels=cout, kernel_size=[kh, kw], stride=n["stride"], padding=conv_padding(n),
                dilation=n["dilation"], groups=n["groups"], bias=n["bias"], layout=NCHW)


def _f_read(fn: str, keys: tuple):
    def read(program, shapes: dict) -> dict:
        call = find_call(program, fn)
        kw = {k: plain(call.kwargs[k]) for k in keys if k in call.kwargs}
        return dict(weight=shape_of(shapes, "w"), bias=call.args[2] is not None, **kw)
    return read


_CONV_COMMON = {"weight": Arg(ints(4, 1, scalar=False), REQUIRED), "bias": Arg(boolean, False),
                "stride": Arg(pair(1), 1)}

FUNCTIONAL = {
    "conv2d_transpose": Inverse(
        "torch.nn.functional.conv_transpose2d",
        {**_CONV_COMMON, "padding": Arg(pair(0), 0), "output_padding": Arg(pair(0), 0),
         "groups": Arg(integer(1), 1), "dilation": Arg(pair(1), 1)},
        _f_transpose_canonical,
        _f_read("torch.nn.functional.conv_transpose2d", ("stride", "padding", "output_padding", "groups",
                                                         "dilation"))),
    "conv2d": Inverse(
        "torch.nn.functional.conv2d",
        {**_CONV_COMMON, "padding": Arg(CONV_PADDING, 0), "dilation": Arg(pair(1), 1),
         "groups": Arg(integer(1), 1)},
        _f_conv_canonical, _f_read("torch.nn.functional.conv2d", ("stride", "padding", "dilation", "groups"))),
}


def _f_pool(op: str) -> Inverse:
    fn = f"torch.nn.functional.{op}"
    return Inverse(fn, _pool_schema(op), lambda n, shape: _pool_fields(op, n),
                   lambda program, shapes: _pool_kwargs(op, find_call(program, fn).kwargs), _stride_default)


FUNCTIONAL.update(avg_pool2d=_f_pool("avg_pool2d"), max_pool2d=_f_pool("max_pool2d"))


# ---------------------------------------------------------------- torch.nn

def _module_schema(transposed: bool) -> dict:
    schema = {"in_channels": Arg(integer(1), REQUIRED), "out_channels": Arg(integer(1), REQUIRED),
              "kernel_size": Arg(pair(1), REQUIRED), "stride": Arg(pair(1), 1)}
    if transposed:
        schema.update(padding=Arg(pair(0), 0), output_padding=Arg(pair(0), 0))
    else:
        schema.update(padding=Arg(CONV_PADDING, 0))
    schema.update(dilation=Arg(pair(1), 1), groups=Arg(integer(1), 1), bias=Arg(boolean, True),
                  padding_mode=Arg(choice("zeros"), "zeros"), device=IGNORED, dtype=IGNORED)
    if transposed:
        schema["output_size"] = Arg(output_size, None)
    return schema


def _padding_mode(name, value):
    if value in ("reflect", "replicate", "circular"):
        raise NativeParamError(name, f"{value!r} pads with the input's own values: the canonical padding is zeros")
    return choice("zeros")(name, value)


def _nn_transpose_canonical(n: dict, input_shape: list) -> dict:
    _check_channels("in_channels", n["in_channels"], input_shape, "in_channels")
    if n["output_size"] is not None:
        expect("output_padding", not any(n["output_padding"]), "ConvTranspose2d.forward ignores output_padding "
                                                               "when output_size is given: give one of them")
    return dict(out_channels=n["out_channels"], kernel_size=n["kernel_size"], stride=n["stride"],
                padding=symmetric(n["padding"]), output_padding=n["output_padding"], dilation=n["dilation"],
                groups=n["groups"], bias=n["bias"], output_shape=n["output_size"], layout=NCHW)


def _nn_conv_canonical(n: dict, input_shape: list) -> dict:
    _check_channels("in_channels", n["in_channels"], input_shape, "in_channels")
    return dict(out_channels=n["out_channels"], kernel_size=n["kernel_size"], stride=n["stride"],
                padding=conv_padding(n), dilation=n["dilation"], groups=n["groups"], bias=n["bias"], layout=NCHW)


def _nn_read(module: str, transposed: bool):
    def read(program, shapes: dict) -> dict:
        ctor = find_call(program, module)
        c_in, c_out, kernel = ctor.args
        keys = ("stride", "padding", "output_padding", "dilation", "groups", "bias")
        out = dict(in_channels=c_in, out_channels=c_out, kernel_size=plain(kernel),
                   **{k: plain(ctor.kwargs[k]) for k in keys if k in ctor.kwargs})
        if transposed:
            forward = applied(program, module)
            if "output_size" in forward.kwargs:
                out["output_size"] = plain(forward.kwargs["output_size"])
        return out
    return read


def _nn_pool(op: str, module: str) -> Inverse:
    return Inverse(f"torch.nn.{module}", _pool_schema(op), lambda n, shape: _pool_fields(op, n),
                   lambda program, shapes: _pool_kwargs(op, find_call(program, f"torch.nn.{module}").kwargs),
                   _stride_default)


_TRANSPOSE_SCHEMA = {**_module_schema(True), "padding_mode": Arg(_padding_mode, "zeros")}
_CONV_SCHEMA = {**_module_schema(False), "padding_mode": Arg(_padding_mode, "zeros")}

MODULES = {
    "conv2d_transpose": Inverse("torch.nn.ConvTranspose2d", _TRANSPOSE_SCHEMA, _nn_transpose_canonical,
                                _nn_read("torch.nn.ConvTranspose2d", True)),
    "conv2d": Inverse("torch.nn.Conv2d", _CONV_SCHEMA, _nn_conv_canonical, _nn_read("torch.nn.Conv2d", False)),
    "avg_pool2d": _nn_pool("avg_pool2d", "AvgPool2d"),
    "max_pool2d": _nn_pool("max_pool2d", "MaxPool2d"),
}
