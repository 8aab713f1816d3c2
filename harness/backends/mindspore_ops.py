"""Backend ``mindspore.ops``: the primitives ``ops.Conv2DTranspose``, ``ops.Conv2D``, ``ops.AvgPool``,
``ops.MaxPool`` and the functional ``ops.avg_pool2d``/``ops.max_pool2d``, in PyNative mode on CPU.

These are what ``mindspore.nn``'s cells are built on (``nn.Conv2dTranspose`` wraps
``Conv2DBackpropInput``, alias ``Conv2DTranspose``); the dtype gaps and the accumulation are the
cells' (``harness/backends/mindspore_common.py``).

``Conv2DTranspose(out_channel, kernel_size, pad_mode, pad, stride, dilation, group)(out_backprop,
filter, input_sizes)``: the gradient of a forward ``Conv2D`` whose input has ``input_size``, so
``out_channel`` is that conv's output channels (the transposed call's input channels) and the
output size is the caller's: ``input_size = (N, C_out, H_out, W_out)``. conform passes the
canonical output size there (``output_shape``, or what the padding form and ``output_padding``
give: the primitive has no default size and no ``output_padding``, ``input_size`` is how it takes
both). ``pad_mode='same'|'valid'`` natively (the primitive derives the crops from ``input_size``),
explicit crops as ``pad_mode='pad'`` with ``pad=(top, bottom, left, right)``; ``pad_list`` (the same
four numbers) is not needed.

``Conv2D(out_channel, kernel_size, mode=1, pad_mode, pad, stride, dilation, group)(x, weight)``:
``same``/``valid``/``pad`` natively. Both convolutions have no bias: ``ops.BiasAdd()`` after them, as
the cells do.

Pooling: ``ops.AvgPool``/``ops.MaxPool(kernel_size, strides, pad_mode)`` take 'same'/'valid' only;
explicit padding, ``ceil_mode``, ``count_include_pad`` and dilation go to ``ops.avg_pool2d``
(AvgPool3D; ``padding=(top, bottom, left, right)``, asymmetric allowed) and ``ops.max_pool2d``
(MaxPoolWithArgmaxV2; ``padding=(ph, pw)``). Which form a call takes, and what neither can pose:
``harness/ops/pooling/frameworks.py`` (``mindspore_ops_*``).

Does not run on CPU (measured, MindSpore 2.10.0, NumPy 1.26.4): ``data_format='NHWC'`` on every
primitive ("the 'NHWC' format is only supported in GPU target"; NHWC is emulated by permuting);
float64 convolutions ("must be a type of {Tensor[BFloat16], Tensor[Float16], Tensor[Float32], ...}");
bfloat16 anywhere ("Select CPU operator[Conv2D] fail! Unsupported data type!", the pooling kernels
likewise); ``ops.AvgPoolV1``/``MaxPoolV1`` do not exist in 2.10.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from harness.backends import mindspore_common as common
from harness.backends import mindspore_native
from harness.backends.base import Backend, Call, NativeParam, Unsupported
from harness.backends.program import Program, Ref, Step
from harness.backends.program import Call as Expr
from harness.ops.conv2d_transpose.semantics import axis_sizes, one_size_request
from harness.ops.pooling import frameworks as pooling_gaps

#: Measured in the mindspore environment (NumPy 1.26, where bfloat16 Tensors convert): the CPU kernels refuse.
UNSUPPORTED = {
    "conv2d_transpose": {"float64": common.UNSUPPORTED_DTYPES["float64"],
                         "bfloat16": "MindSpore's CPU Conv2DTranspose (Conv2DBackpropInput) has no bfloat16 kernel"},
    "conv2d": {"float64": common.UNSUPPORTED_CONV2D_DTYPES["float64"],
               "bfloat16": "MindSpore's CPU Conv2D has no bfloat16 kernel (\"Select CPU operator[Conv2D] fail! "
                           "Unsupported data type!\")"},
}

_CONV = {
    "x": NativeParam("x", "Tensor (N, C_in, H, W)", "the primitive's first input; NCHW on CPU", position=0,
                     call="forward"),
    "kernel_size": NativeParam("kernel_size", "int or (kh, kw)", "", position=1),
    "stride": NativeParam("stride", "int or (sh, sw)", "default 1"),
    "padding": NativeParam("pad", "int or (top, bottom, left, right)", "only with pad_mode='pad'"),
    "padding_mode": NativeParam("pad_mode", "'same' | 'valid' | 'pad'", "default 'valid'"),
    "dilation": NativeParam("dilation", "int or (dh, dw)", "default 1"),
    "groups": NativeParam("group", "int", "default 1"),
    "bias": NativeParam(None, "", "no bias: ops.BiasAdd()(y, bias) after the primitive, as the cells do",
                        via="bias"),
    "b": NativeParam("bias", "Tensor (C_out,)", "ops.BiasAdd's second input (ops.bias_add(input_x, bias))",
                     position=1, call="bias_add"),
    "layout": NativeParam(None, "", "data_format='NHWC' is GPU-only: NHWC emulated by permuting", emulated=True),
    "dtype": NativeParam(None, "", "the tensors' dtype: float16 and float32 on CPU", via="x"),
}


class MindsporeOpsBackend(Backend):
    id = "mindspore.ops"
    framework = "mindspore"
    distribution = "mindspore"
    environment = "mindspore"
    import_name = "mindspore"
    resident_bytes = 480 << 20      # as mindspore.nn: the same import
    plans_calls = True
    NATIVE = mindspore_native.PRIMITIVES
    accumulation = common.CONV_ACCUMULATION
    PARAMETERS = {"conv2d_transpose": {
        **_CONV,
        "x": NativeParam("out_backprop", "Tensor (N, C_in, H, W)", "the gradient of the forward conv's output",
                         position=0, call="forward"),
        "w": NativeParam("filter", "Tensor (C_in, C_out/group, kh, kw)", "the forward conv's weight: the "
                         "canonical layout", position=1, call="forward"),
        "in_channels": NativeParam("out_channel", "int", "the forward conv's output channels = the input's "
                                   "channels (C_in)", position=0),
        "out_channels": NativeParam(None, "", "input_sizes[1]", via="input_sizes"),
        "output_shape": NativeParam("input_sizes", "tuple (N, C_out, H_out, W_out)", "required: the output "
                                    "size (the forward conv's input)", position=2, call="forward"),
        "output_padding": NativeParam(None, "", "no output_padding: the size it gives goes into input_sizes",
                                      via="input_sizes"),
        "dtype": NativeParam(None, "", "the tensors' dtype: float16 and float32 on CPU", via="out_backprop"),
    }, "conv2d": {
        **_CONV,
        "w": NativeParam("w", "Tensor (C_out, C_in/group, kh, kw)", "the canonical layout", position=1,
                         call="forward"),
        "in_channels": NativeParam(None, "", "no parameter: the input's channels = weight.shape[1]·group",
                                   via="x"),
        "out_channels": NativeParam("out_channel", "int", "must equal weight.shape[0]", position=0),
    }}
    PARAMETERS["avg_pool2d"] = {
        "x": NativeParam("x", "Tensor (N, C, H, W)", "NCHW on CPU", position=0, call="forward"),
        "kernel_size": NativeParam("kernel_size", "int or (kh, kw)", "default 1"),
        "stride": NativeParam("strides", "int or (sh, sw)", "default 1 (ops.avg_pool2d: stride)"),
        "padding_mode": NativeParam("pad_mode", "'SAME' | 'VALID'", "ops.AvgPool's only padding"),
        "padding": NativeParam(None, "", "ops.avg_pool2d's padding=(top, bottom, left, right), top + bottom ≤ k; "
                               "not an ops.AvgPool parameter", emulated=True),
        "ceil_mode": NativeParam(None, "", "ops.avg_pool2d's ceil_mode (ops.AvgPool has none)", emulated=True),
        "count_include_pad": NativeParam(None, "", "ops.avg_pool2d's count_include_pad (ops.AvgPool excludes "
                                         "the padding)", emulated=True),
        "layout": NativeParam(None, "", "data_format='NHWC' is GPU-only: NHWC emulated by permuting", emulated=True),
        "dtype": NativeParam(None, "", "the tensor's dtype: float16, float32, float64 on CPU", via="x"),
    }
    PARAMETERS["max_pool2d"] = {
        **{k: v for k, v in PARAMETERS["avg_pool2d"].items() if k != "count_include_pad"},
        "padding": NativeParam(None, "", "ops.max_pool2d's padding=(ph, pw), ≤ k // 2; not an ops.MaxPool "
                               "parameter", emulated=True),
        "ceil_mode": NativeParam(None, "", "ops.max_pool2d's ceil_mode (ops.MaxPool has none)", emulated=True),
        "dilation": NativeParam(None, "", "ops.max_pool2d's dilation (ops.MaxPool has none)", emulated=True),
    }

    def setup(self) -> None:
        common.setup()

    def unsupported_reason(self, exc: BaseException) -> Optional[str]:
        return common.gradient_gap(exc)

    def conv2d_transpose(self, call: Call) -> Program:
        p, r = call.params, call.resolved
        if call.dtype in UNSUPPORTED[call.op]:
            raise Unsupported(UNSUPPORTED[call.op][call.dtype])
        pad, keras = p["padding"], p.get("size_rule") == "keras"
        one_size_request(call, "ops.Conv2DTranspose (input_size only)")
        if keras and r is None:
            raise Unsupported("ops.Conv2DTranspose has no output_padding: an invalid size_rule 'keras' call cannot "
                              "be posed")
        if isinstance(pad, str) and any(p["output_padding"]) and not keras:
            raise Unsupported(f"ops.Conv2DTranspose has no output_padding: with pad_mode={pad!r} it cannot be "
                              "posed (the size goes into input_size, which 'same'/'valid' then crop by their rule)")
        n, c_in = call.arrays["x"].shape[:2]
        out_hw = tuple(r["out_hw"]) if r is not None else self._raw_out_hw(p, call.arrays["x"].shape)
        kw = dict(stride=tuple(p["stride"]), dilation=tuple(p["dilation"]), group=p["groups"])
        if keras:   # Keras' size through input_size, its crops (TensorFlow's) explicitly: 'same' may crop otherwise
            kw.update(pad_mode="pad", pad=tuple(r["crops"]))
        else:
            kw.update(_pad_mode(pad, r and r["crops"]))
        primitive = Expr("mindspore.ops.Conv2DTranspose", (c_in, tuple(p["kernel_size"])), kw)
        steps = [Step("x", common.tensor("x", call.dtype), "prepare", comment="canonical NCHW"),
                 Step("weight", common.tensor("w", call.dtype), "prepare",
                      comment="(C_in, C_out/group, kh, kw): the forward conv's weight, MindSpore's own layout"),
                 Step("y", Expr(primitive, (Ref("x"), Ref("weight"), (n, p["out_channels"], *out_hw))), timed=True)]
        program = self._finish(call, steps, _same_lower_note(pad, r and r["crops"]))
        if not keras:
            return program
        note = (f"padding {pad!r} with output_padding {p['output_padding']} (size_rule 'keras') expressed as "
                f"pad_mode='pad', pad={tuple(r['crops'])}, input_size {tuple(r['out_hw'])}")
        return replace(program, emulated=True, notes=program.notes + (note,))

    def conv2d(self, call: Call) -> Program:
        p = call.params
        if call.dtype in UNSUPPORTED[call.op]:
            raise Unsupported(UNSUPPORTED[call.op][call.dtype])
        kw = dict(stride=tuple(p["stride"]), dilation=tuple(p["dilation"]), group=p["groups"])
        kw.update(_pad_mode(p["padding"], call.resolved and call.resolved["pads"]))
        primitive = Expr("mindspore.ops.Conv2D", (p["out_channels"], tuple(p["kernel_size"])), kw)
        steps = [Step("x", common.tensor("x", call.dtype), "prepare", comment="canonical NCHW"),
                 Step("weight", common.tensor("w", call.dtype), "prepare",
                      comment="(C_out, C_in/group, kh, kw): MindSpore's own layout"),
                 Step("y", Expr(primitive, (Ref("x"), Ref("weight"))), timed=True)]
        return self._finish(call, steps, _same_lower_note(p["padding"], call.resolved and call.resolved["pads"]))

    def _finish(self, call: Call, steps: list, padding_note: Optional[str] = None) -> Program:
        notes, emulated = [], call.layout == "NHWC"
        if emulated:
            notes.append("NHWC emulated: data_format='NHWC' is GPU-only; input permuted to NCHW")
        if padding_note:
            notes.append(padding_note)
            emulated = True
        if "b" in call.arrays:
            steps.insert(2, Step("bias", common.tensor("b", call.dtype), "prepare"))
            steps.append(Step("y", Expr(Expr("mindspore.ops.BiasAdd"), (Ref("y"), Ref("bias"))), timed=True))
        return common.program(call, steps + common.finish_steps(call), emulated, notes)

    @staticmethod
    def _raw_out_hw(p: dict, x_shape) -> tuple[int, int]:
        """For a call the semantics rejects: the output size it asks for, unchecked (MindSpore judges it)."""
        if isinstance(p["padding"], str):
            form, pads = p["padding"], ((0, 0), (0, 0))
        else:
            t, b, l, r = p["padding"]
            form, pads = "explicit", ((t, b), (l, r))
        shape = p["output_shape"] or (None, None)
        return tuple(axis_sizes(size, k, s, d, form, pad, op, out)[3] for size, k, s, d, pad, op, out in zip(
            x_shape[2:], p["kernel_size"], p["stride"], p["dilation"], pads, p["output_padding"], shape))

    def avg_pool2d(self, call: Call) -> Program:
        return self._pool(call)

    def max_pool2d(self, call: Call) -> Program:
        return self._pool(call)

    def _pool(self, call: Call) -> Program:
        """'same'/'valid' with nothing else: ops.AvgPool/ops.MaxPool; otherwise ops.avg_pool2d/ops.max_pool2d."""
        p, r = call.params, call.resolved
        gap = pooling_gaps.mindspore_ops_gap(call.op, p, r, call.dtype)
        if gap:
            raise Unsupported(gap)
        notes, emulated = [], False
        if call.layout == "NHWC":
            emulated = True
            notes.append("NHWC emulated: data_format='NHWC' is GPU-only; input permuted to NCHW")
        kernel, stride = tuple(p["kernel_size"]), tuple(p["stride"])
        if pooling_gaps.mindspore_ops_uses_primitive(call.op, p, r):
            name = {"avg_pool2d": "mindspore.ops.AvgPool", "max_pool2d": "mindspore.ops.MaxPool"}[call.op]
            if p["ceil_mode"]:
                emulated = True
                notes.append(f"ceil_mode=true adds no window here: posed with {name.rsplit('.', 1)[1]}, which has "
                             "no ceil_mode")
            fn = Expr(name, (), {"kernel_size": kernel, "strides": stride, "pad_mode": p["padding"].upper()})
            call_expr = Expr(fn, (Ref("x"),))
        else:
            pads = pooling_gaps.explicit_pads(p, r)
            if isinstance(p["padding"], str) and any(pads):
                emulated = True
                notes.append(f"padding {p['padding']!r} expressed as its pads {list(pads)} (ops.{call.op} has no "
                             "'same')")
            if call.op == "avg_pool2d":
                kw = dict(kernel_size=kernel, stride=stride, padding=tuple(pads), ceil_mode=p["ceil_mode"],
                          count_include_pad=p["count_include_pad"])
            else:
                kw = dict(kernel_size=kernel, stride=stride, padding=(pads[0], pads[2]),
                          dilation=tuple(p["dilation"]), ceil_mode=p["ceil_mode"])
            call_expr = Expr(f"mindspore.ops.{call.op}", (Ref("x"),), kw)
        accumulation, more = common.pool_accumulation(call)
        steps = [Step("x", common.tensor("x", call.dtype, via="float64"), "prepare", comment="canonical NCHW"),
                 Step("y", call_expr, timed=True)]
        return common.program(call, steps + common.finish_steps(call, out="float64"), emulated, notes + more,
                              accumulation=accumulation)


def _pad_mode(padding, resolved_pads) -> dict:
    """``pad_mode``/``pad`` for a canonical padding: 'same'/'valid' natively, explicit as ``pad_mode='pad'``,
    'same_lower' (MindSpore has no such mode) as the pads it resolves to."""
    if padding == "same_lower":
        if resolved_pads is None:
            raise Unsupported("MindSpore has no 'same_lower' pad_mode: an invalid call with it cannot be posed")
        return dict(pad_mode="pad", pad=tuple(resolved_pads))
    if isinstance(padding, str):
        return dict(pad_mode=padding)
    return dict(pad_mode="pad", pad=tuple(padding))


def _same_lower_note(padding, resolved_pads) -> Optional[str]:
    if padding != "same_lower":
        return None
    return f"padding 'same_lower' (MindSpore has no such pad_mode) expressed as pad_mode='pad', pad={list(resolved_pads)}"
