"""Backend ``mindspore.nn``: ``mindspore.nn.Conv2dTranspose`` and ``nn.Conv2d`` in PyNative mode on CPU.

``Conv2d``: ``pad_mode='same'|'valid'`` native, explicit padding as
``pad_mode='pad'`` with ``padding=(top, bottom, left, right)``, ``group``,
``dilation``, ``has_bias`` with ``bias_init`` and ``weight_init`` (the
canonical weights, ``(C_out, C_in/group, kh, kw)``, MindSpore's own layout);
NHWC permuted (the CPU kernel is NCHW only). Unsupported as for the
transposed cell (measured on MindSpore 2.10.0): float64 ("the input
argument[w] must be a type of {Tensor[BFloat16], Tensor[Float16],
Tensor[Float32], ...}") and bfloat16 (NumPy 2 conversion refused).

``Conv2dTranspose``:

Native parameters: ``pad_mode='same'|'valid'|'pad'``, ``padding`` (int or
``(top, bottom, left, right)``), ``output_padding``, ``stride``, ``dilation``,
``group``, ``has_bias`` with ``bias_init``, ``weight_init`` (a Tensor holding
the canonical weights, whose layout ``(C_in, C_out/group, kh, kw)`` is
MindSpore's own) and ``dtype``.

Emulated and marked: NHWC (the cell has no ``data_format``: input permuted),
and ``output_shape`` (no such parameter): translated to ``pad_mode='pad'``
with the resolved crops and ``output_padding`` unless it equals what
``same``/``valid`` give by default.

Unsupported (measured on MindSpore 2.10.0, CPU): float64 ("input argument
must be a type of {Tensor[BFloat16], Tensor[Float16], Tensor[Float32], ...}")
and bfloat16 ("Select CPU operator[Conv2DBackpropInput] fail! Unsupported
data type!"; with NumPy 2 the Tensor conversion fails even earlier: "The
Numpy bfloat16 data type is not supported now"). ``tests/test_backends.py`` re-checks both claims so they cannot
go stale silently.
"""

from __future__ import annotations

from typing import Optional

from harness.backends import mindspore_common
from harness.backends import mindspore_native
from harness.backends.base import Backend, Call, NativeParam, Unsupported
from harness.backends.program import Attr, Import, Method, Program, Ref, Step
from harness.backends.program import Call as Expr
from harness.backends.mindspore_common import UNSUPPORTED_CONV2D_DTYPES, UNSUPPORTED_DTYPES
from harness.ops.conv2d_transpose.semantics import implied_output_padding, one_size_request
from harness.ops.pooling import frameworks as pooling_gaps


class MindsporeNnBackend(Backend):
    id = "mindspore.nn"
    framework = "mindspore"
    distribution = "mindspore"
    environment = "mindspore"
    import_name = "mindspore"
    resident_bytes = 480 << 20      # measured 420 MiB after setup
    plans_calls = True
    NATIVE = mindspore_native.CELLS
    accumulation = mindspore_common.CONV_ACCUMULATION   # measured: float16 convolutions sum in float32
    PARAMETERS = {"conv2d_transpose": {
        "x": NativeParam("x", "Tensor (N, C_in, H, W)", "the cell's input; NCHW only", position=0, call="forward"),
        "w": NativeParam("weight_init", "Tensor (C_in, C_out/group, kh, kw), or an initializer name",
                         "default 'normal' (random); conform passes the canonical weights as a Tensor"),
        "kernel_size": NativeParam("kernel_size", "int or (kh, kw)", "an int means kh = kw"),
        "in_channels": NativeParam("in_channels", "int", "must equal the input's channels", position=0),
        "out_channels": NativeParam("out_channels", "int", "", position=1),
        "output_shape": NativeParam(None, "", "no output_shape: emulated as pad_mode='pad' with the crops "
                                    "and output_padding it implies", emulated=True),
        "stride": NativeParam("stride", "int or (sh, sw)", "default 1"),
        "padding": NativeParam("padding", "int or (top, bottom, left, right)",
                               "≥ 0, default 0; only with pad_mode='pad'"),
        "padding_mode": NativeParam("pad_mode", "'same' | 'valid' | 'pad'",
                                    "default 'same'; 'pad' for explicit padding"),
        "output_padding": NativeParam("output_padding", "int or (oh, ow)",
                                      "0 ≤ op < max(stride, dilation); the added rows are zeros (F2)"),
        "dilation": NativeParam("dilation", "int or (dh, dw)", "default 1"),
        "groups": NativeParam("group", "int", "in_channels and out_channels divisible by group; default 1"),
        "bias": NativeParam("has_bias", "bool", "default False"),
        "b": NativeParam("bias_init", "Tensor (C_out,), or an initializer name", "default 'zeros'"),
        "layout": NativeParam(None, "", "no data_format (NCHW only): NHWC emulated by permuting", emulated=True),
        "dtype": NativeParam("dtype", "mindspore dtype", "default float32; CPU: float16 and float32 only"),
    }, "conv2d": {
        "x": NativeParam("x", "Tensor (N, C_in, H, W)", "the cell's input; NCHW only", position=0, call="forward"),
        "w": NativeParam("weight_init", "Tensor (C_out, C_in/group, kh, kw), or an initializer name",
                         "default 'normal' (random); conform passes the canonical weights as a Tensor"),
        "kernel_size": NativeParam("kernel_size", "int or (kh, kw)", "an int means kh = kw"),
        "in_channels": NativeParam("in_channels", "int", "must equal the input's channels", position=0),
        "out_channels": NativeParam("out_channels", "int", "", position=1),
        "stride": NativeParam("stride", "int or (sh, sw)", "default 1"),
        "padding": NativeParam("padding", "int or (top, bottom, left, right)",
                               "≥ 0, default 0; only with pad_mode='pad'"),
        "padding_mode": NativeParam("pad_mode", "'same' | 'valid' | 'pad'",
                                    "default 'same'; 'pad' for explicit padding"),
        "dilation": NativeParam("dilation", "int or (dh, dw)", "default 1"),
        "groups": NativeParam("group", "int", "in_channels and out_channels divisible by group; default 1"),
        "bias": NativeParam("has_bias", "bool", "default False"),
        "b": NativeParam("bias_init", "Tensor (C_out,), or an initializer name", "default None (zeros)"),
        "layout": NativeParam(None, "", "data_format 'NHWC' is GPU-only: NHWC emulated by permuting", emulated=True),
        "dtype": NativeParam("dtype", "mindspore dtype", "default float32; CPU: float16 and float32 only"),
    }}
    PARAMETERS["avg_pool2d"] = {
        "x": NativeParam("x", "Tensor (N, C, H, W)", "the cell's input; NCHW on CPU", position=0, call="forward"),
        "kernel_size": NativeParam("kernel_size", "int or (kh, kw)", "default 1"),
        "stride": NativeParam("stride", "int or (sh, sw)", "default 1 (not the kernel): always passed"),
        "padding_mode": NativeParam("pad_mode", "'same' | 'valid' | 'pad'", "default 'valid'"),
        "padding": NativeParam("padding", "int or (ph, pw)", "symmetric per axis; only with pad_mode='pad'"),
        "ceil_mode": NativeParam("ceil_mode", "bool", "default False"),
        "count_include_pad": NativeParam("count_include_pad", "bool", "default True (the canonical default is "
                                         "false): always passed"),
        "layout": NativeParam(None, "", "data_format='NHWC' only on GPU: NHWC emulated by permuting",
                              emulated=True),
        "dtype": NativeParam(None, "", "the tensor's dtype: float16, float32, float64 on CPU", via="x"),
    }
    PARAMETERS["max_pool2d"] = {
        **{k: v for k, v in PARAMETERS["avg_pool2d"].items() if k != "count_include_pad"},
        "ceil_mode": NativeParam("ceil_mode", "bool", "only with pad_mode='pad'"),
        "dilation": NativeParam("dilation", "int or (dh, dw)", "only with pad_mode='pad'"),
    }

    def setup(self) -> None:
        mindspore_common.setup()

    def unsupported_reason(self, exc: BaseException) -> Optional[str]:
        return mindspore_common.gradient_gap(exc)

    def conv2d_transpose(self, call: Call) -> Program:
        p, r = call.params, call.resolved
        if call.dtype in UNSUPPORTED_DTYPES:
            raise Unsupported(UNSUPPORTED_DTYPES[call.dtype])
        one_size_request(call, "nn.Conv2dTranspose (output_padding only)")
        notes, emulated = [], False
        if call.layout == "NHWC":
            emulated = True
            notes.append("NHWC emulated: nn.Conv2dTranspose has no data_format; input permuted to NCHW")
        kw = dict(stride=tuple(p["stride"]), dilation=tuple(p["dilation"]), group=p["groups"])
        pad, shape, keras = p["padding"], p["output_shape"], p.get("size_rule") == "keras"
        if pad == "same_lower":
            # No such pad_mode: the crops and output_padding it resolves to, with pad_mode='pad'.
            if r is None:
                raise Unsupported("MindSpore has no 'same_lower' pad_mode: an invalid call with it cannot be posed")
            emulated = True
            kw.update(pad_mode="pad", padding=tuple(r["crops"]), output_padding=tuple(r["output_padding"]))
            notes.append(f"padding 'same_lower' expressed as pad_mode='pad', padding={kw['padding']}, "
                         f"output_padding={kw['output_padding']}")
        elif isinstance(pad, str) and not keras and (shape is None or (r is not None and self._is_default(pad, r))):
            kw.update(pad_mode=pad, padding=0)
            if any(p["output_padding"]):   # MindSpore has the parameter: let it judge the combination
                kw.update(output_padding=tuple(p["output_padding"]))
        elif isinstance(pad, str):
            # output_shape, or Keras' size for output_padding (its pad_mode='same' + output_padding is its own)
            asked = f"output_padding {p['output_padding']} (size_rule 'keras')" if keras else f"output_shape {shape}"
            if r is None:
                raise Unsupported(f"nn.Conv2dTranspose has no output_shape: padding {pad!r} with an unreachable "
                                  f"{asked} cannot be posed")
            emulated = True
            kw.update(pad_mode="pad", padding=tuple(r["crops"]), output_padding=tuple(r["output_padding"]))
            notes.append(f"padding {pad!r} with {asked} expressed as pad_mode='pad', "
                         f"padding={kw['padding']}, output_padding={kw['output_padding']}")
        else:
            op = tuple(p["output_padding"])
            if shape is not None:   # an unreachable shape too: MindSpore judges the output_padding it implies
                emulated = True
                op = tuple(r["output_padding"]) if r is not None else implied_output_padding(p, call.arrays["x"].shape)
                notes.append(f"output_shape {shape} expressed as output_padding={op}")
            kw.update(pad_mode="pad", padding=tuple(pad), output_padding=op)
        return _conv_cell(call, "mindspore.nn.Conv2dTranspose", kw, "(C_in, C_out/group, kh, kw): MindSpore's own",
                          emulated, notes)

    def conv2d(self, call: Call) -> Program:
        p = call.params
        if call.dtype in UNSUPPORTED_CONV2D_DTYPES:
            raise Unsupported(UNSUPPORTED_CONV2D_DTYPES[call.dtype])
        notes, emulated = [], False
        if call.layout == "NHWC":
            emulated = True
            notes.append("NHWC emulated: nn.Conv2d's data_format='NHWC' is GPU-only; input permuted to NCHW")
        kw = dict(stride=tuple(p["stride"]), dilation=tuple(p["dilation"]), group=p["groups"])
        if p["padding"] == "same_lower":   # no such pad_mode: the pads it resolves to
            if call.resolved is None:
                raise Unsupported("MindSpore has no 'same_lower' pad_mode: an invalid call with it cannot be posed")
            emulated = True
            kw.update(pad_mode="pad", padding=tuple(call.resolved["pads"]))
            notes.append(f"padding 'same_lower' expressed as pad_mode='pad', padding={kw['padding']}")
        elif isinstance(p["padding"], str):
            kw.update(pad_mode=p["padding"], padding=0)
        else:
            kw.update(pad_mode="pad", padding=tuple(p["padding"]))
        return _conv_cell(call, "mindspore.nn.Conv2d", kw, "(C_out, C_in/group, kh, kw): MindSpore's own",
                          emulated, notes)

    def avg_pool2d(self, call: Call) -> Program:
        return self._pool(call, "mindspore.nn.AvgPool2d",
                          {"ceil_mode": call.params["ceil_mode"], "count_include_pad": call.params["count_include_pad"]})

    def max_pool2d(self, call: Call) -> Program:
        return self._pool(call, "mindspore.nn.MaxPool2d", {"dilation": tuple(call.params["dilation"]),
                                                           "ceil_mode": call.params["ceil_mode"]})

    def _pool(self, call: Call, cell: str, extra: dict) -> Program:
        """Both pooling cells: pad_mode 'same'/'valid' natively, else 'pad' with symmetric (ph, pw)."""
        p, r = call.params, call.resolved
        gap = pooling_gaps.mindspore_gap(call.op, p, r, call.dtype)
        if gap:
            raise Unsupported(gap)
        mode = pooling_gaps.mindspore_mode(p, r)
        notes, emulated = [], False
        if call.layout == "NHWC":
            emulated = True
            notes.append("NHWC emulated: data_format='NHWC' runs on GPU only; input permuted to NCHW")
        padding = 0
        if mode == "pad":
            pads = pooling_gaps.explicit_pads(p, r)
            padding = (pads[0], pads[2])
            if isinstance(p["padding"], str):
                emulated = True
                notes.append(f"padding {p['padding']!r} expressed as pad_mode='pad', padding={padding} "
                             "(the cell takes dilation/ceil_mode only with 'pad')")
        elif call.op == "max_pool2d":   # the cell refuses any non-default dilation/ceil_mode outside 'pad'
            extra = {**extra, "dilation": 1, "ceil_mode": False}
            if p["ceil_mode"]:           # 'same' only (mindspore_mode): windows fit exactly, it adds none
                emulated = True
                notes.append("ceil_mode=true adds no window with 'same': posed without it (the cell takes it "
                             "only with pad_mode='pad')")
        dtype = Attr(f"mindspore.{call.dtype}")
        steps = [Step("x", Expr(Method(Expr("mindspore.Tensor", (Ref("x"), Attr("mindspore.float64"))), "astype"),
                                (dtype,)), "prepare", comment="canonical NCHW"),
                 Step("net", Expr(cell, (), {"kernel_size": tuple(p["kernel_size"]), "stride": tuple(p["stride"]),
                                             "pad_mode": mode, "padding": padding, **extra})),
                 Step("y", Expr(Ref("net"), (Ref("x"),)), timed=True),
                 Step(None, Expr("mindspore.runtime.synchronize"), timed=True),
                 Step("out", Expr(Method(Expr(Method(Ref("y"), "astype"), (Attr("mindspore.float64"),)),
                                         "asnumpy")), "finish")]
        if call.layout == "NHWC":
            steps.append(Step("out", Expr("numpy.ascontiguousarray",
                                          (Expr(Method(Ref("out"), "transpose"), (0, 2, 3, 1)),)), "finish"))
        accumulation, accumulation_notes = mindspore_common.pool_accumulation(call)
        notes += accumulation_notes
        return Program("mindspore", (Import("mindspore"), Import("mindspore.nn"), Import("numpy")), ("x",),
                       tuple(steps), "out", emulated, tuple(notes), accumulation=accumulation,
                       environment=(("GLOG_v", "3"),), setup=("mindspore.set_context(mode=mindspore.PYNATIVE_MODE)",),
                       leaves=mindspore_common.leaves(call), result=mindspore_common.result(call))

    @staticmethod
    def _is_default(pad: str, r: dict) -> bool:
        """Whether the resolved output size is what pad_mode ``pad`` gives without output_shape."""
        (h, w), (sh, sw) = r["in_hw"], r["stride"]
        if pad == "same":
            return tuple(r["out_hw"]) == (h * sh, w * sw)
        return tuple(r["out_hw"]) == tuple(r["full_hw"])


def _conv_cell(call: Call, cell: str, kw: dict, weight_layout: str, emulated: bool, notes: list) -> Program:
    """A convolution cell built with the canonical weights (and bias) as its initialisers, then called."""
    p, dtype = call.params, Attr(f"mindspore.{call.dtype}")

    def tensor(name):
        return Expr(Method(Expr("mindspore.Tensor", (Ref(name), Attr("mindspore.float32"))), "astype"), (dtype,))

    has_bias = "b" in call.arrays
    steps = [Step("x", tensor("x"), "prepare", comment="canonical NCHW"),
             Step("weight", tensor("w"), "prepare", comment=weight_layout)]
    init = dict(has_bias=has_bias, weight_init=Ref("weight"))
    if has_bias:
        steps.append(Step("bias", tensor("b"), "prepare"))
        init["bias_init"] = Ref("bias")
    c_in = call.arrays["x"].shape[1]
    # The cell validates its arguments when it is built (a native step, not timed); PyNative dispatches
    # asynchronously, so the timed part waits for the kernel.
    steps += [Step("net", Expr(cell, (c_in, p["out_channels"]),
                               {"kernel_size": tuple(p["kernel_size"]), **kw, **init, "dtype": dtype})),
              Step("y", Expr(Ref("net"), (Ref("x"),)), timed=True),
              Step(None, Expr("mindspore.runtime.synchronize"), timed=True),
              Step("out", Expr(Method(Expr(Method(Ref("y"), "astype"), (Attr("mindspore.float32"),)),
                                      "asnumpy")), "finish")]
    if call.layout == "NHWC":
        steps.append(Step("out", Expr("numpy.ascontiguousarray",
                                      (Expr(Method(Ref("out"), "transpose"), (0, 2, 3, 1)),)), "finish"))
    operands = ("x", "w", "b") if has_bias else ("x", "w")
    # The cell's Parameters are the leaves (what training updates), not the Tensors they were initialised from.
    leaves = mindspore_common.leaves(call, Method(Ref("net"), "weight"), Method(Ref("net"), "bias"))
    return Program("mindspore", (Import("mindspore"), Import("mindspore.nn"), Import("numpy")), operands,
                   tuple(steps), "out", emulated, tuple(notes), environment=(("GLOG_v", "3"),),
                   setup=("mindspore.set_context(mode=mindspore.PYNATIVE_MODE)",),
                   leaves=leaves, result=mindspore_common.result(call))
