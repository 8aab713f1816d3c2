"""Backend ``torch.functional``: ``torch.nn.functional.conv_transpose2d`` and ``conv2d``.

``conv2d``: ``padding='valid'`` is native, ``padding='same'`` native with
stride 1 (PyTorch refuses it for strided convolutions; then the resolved
padding is passed, marked emulated), symmetric explicit padding native,
asymmetric padding applied with ``F.pad`` first (emulated), NHWC permuted.

``conv_transpose2d``:

Native parameters: ``stride``, symmetric ``padding=(ph, pw)``,
``output_padding``, ``groups``, ``dilation``, ``bias``; weights are already in
PyTorch's ``(C_in, C_out/groups, kh, kw)``. The functional API has no
``'same'``/``'valid'``, no asymmetric padding, no ``output_size`` and no NHWC
layout; those are emulated and marked:

* symmetric crops (``valid``, even ``same``, ``output_shape``) become
  ``padding``/``output_padding``;
* asymmetric crops are taken from the full output (``padding=0``) by slicing,
  with zeros past its end and the bias added afterwards;
* NHWC input is permuted to NCHW and the output back.
"""

from __future__ import annotations

from typing import Optional

from harness.backends import torch_native
from harness.backends.base import Backend, Call, NativeParam
from harness.backends.program import Import, Program, Ref, Step, evaluate, main_call
from harness.backends.program import Call as Expr
from harness.backends.torch_common import (conv_accumulation, finish_steps, leaves, onednn_backends, operand_steps,
                                           operands, plan_conv2d, plan_conv_transpose, plan_pool, result,
                                           slice_steps)


class TorchFunctionalBackend(Backend):
    id = "torch.functional"
    framework = "torch"
    distribution = "torch"
    environment = "torch"
    import_name = "torch"
    resident_bytes = 256 << 20      # measured 226 MiB after setup
    plans_calls = True
    NATIVE = torch_native.FUNCTIONAL
    PARAMETERS = {"conv2d_transpose": {
        "x": NativeParam("input", "Tensor (N, C_in, H, W)", "NCHW only", position=0),
        "w": NativeParam("weight", "Tensor (C_in, C_out/groups, kh, kw)", "the canonical layout", position=1),
        "kernel_size": NativeParam(None, "", "no parameter: weight.shape[2:]", via="weight"),
        "in_channels": NativeParam(None, "", "no parameter: weight.shape[0], must equal the input's channels",
                                   via="weight"),
        "out_channels": NativeParam(None, "", "no parameter: weight.shape[1]·groups", via="weight"),
        "output_shape": NativeParam(None, "", "no output_size in the functional API: emulated as the "
                                    "padding/output_padding it implies (or a slice of the full output)",
                                    emulated=True),
        "stride": NativeParam("stride", "int or (sh, sw)", "default 1"),
        "padding": NativeParam("padding", "int or (ph, pw)", "symmetric crops only; asymmetric crops "
                               "emulated by slicing the full output (padding=0)"),
        "padding_mode": NativeParam(None, "", "no 'same'/'valid' for transposed convolution: emulated as "
                                    "padding/output_padding by TensorFlow's rule, or a slice", emulated=True),
        "output_padding": NativeParam("output_padding", "int or (oh, ow)",
                                      "0 ≤ op < max(stride, dilation); the added rows hold full-output values"),
        "dilation": NativeParam("dilation", "int or (dh, dw)", "default 1"),
        "groups": NativeParam("groups", "int", "C_in and C_out divisible by groups"),
        "bias": NativeParam("bias", "Tensor (C_out,) or None", "None: no bias", position=2),
        "b": NativeParam("bias", "Tensor (C_out,)", "added to every output element", position=2),
        "layout": NativeParam(None, "", "no data_format (NCHW only): NHWC emulated by permuting", emulated=True),
        "dtype": NativeParam(None, "", "the tensors' dtype: float16, bfloat16, float32, float64 on CPU",
                             via="input"),
    }, "conv2d": {
        "x": NativeParam("input", "Tensor (N, C_in, H, W)", "NCHW only", position=0),
        "w": NativeParam("weight", "Tensor (C_out, C_in/groups, kh, kw)", "the canonical layout", position=1),
        "kernel_size": NativeParam(None, "", "no parameter: weight.shape[2:]", via="weight"),
        "in_channels": NativeParam(None, "", "no parameter: the input's channels = weight.shape[1]·groups",
                                   via="input"),
        "out_channels": NativeParam(None, "", "no parameter: weight.shape[0]", via="weight"),
        "stride": NativeParam("stride", "int or (sh, sw)", "default 1"),
        "padding": NativeParam("padding", "int or (ph, pw)", "symmetric only; asymmetric emulated with F.pad "
                               "first"),
        "padding_mode": NativeParam("padding", "'same' | 'valid'", "'same' only with stride 1 (else the resolved "
                                    "padding, emulated); odd totals: the extra row/column at the bottom/right"),
        "dilation": NativeParam("dilation", "int or (dh, dw)", "default 1"),
        "groups": NativeParam("groups", "int", "C_in and C_out divisible by groups"),
        "bias": NativeParam("bias", "Tensor (C_out,) or None", "None: no bias", position=2),
        "b": NativeParam("bias", "Tensor (C_out,)", "added to every output element", position=2),
        "layout": NativeParam(None, "", "no data_format (NCHW only): NHWC emulated by permuting", emulated=True),
        "dtype": NativeParam(None, "", "the tensors' dtype: float16, bfloat16, float32, float64 on CPU",
                             via="input"),
    }}
    PARAMETERS["avg_pool2d"] = {
        "x": NativeParam("input", "Tensor (N, C, H, W)", "NCHW only", position=0),
        "kernel_size": NativeParam("kernel_size", "int or (kh, kw)", ""),
        "stride": NativeParam("stride", "int or (sh, sw)", "default: kernel_size"),
        "padding": NativeParam("padding", "int or (ph, pw)", "symmetric only, ph ≤ kh // 2"),
        "padding_mode": NativeParam(None, "", "no 'same'/'valid': posed as the padding they resolve to when "
                                    "it is symmetric", emulated=True),
        "ceil_mode": NativeParam("ceil_mode", "bool", "default False"),
        "count_include_pad": NativeParam("count_include_pad", "bool", "default True (the canonical default is "
                                         "false): always passed"),
        "layout": NativeParam(None, "", "NCHW only: NHWC emulated by permuting", emulated=True),
        "dtype": NativeParam(None, "", "the tensor's dtype", via="input"),
    }
    PARAMETERS["max_pool2d"] = {
        **{k: v for k, v in PARAMETERS["avg_pool2d"].items() if k != "count_include_pad"},
        "dilation": NativeParam("dilation", "int or (dh, dw)", "default 1"),
    }
    # No class-level `accumulation`: each call reports the kernel path torch chose (`accumulation_of`).

    def setup(self) -> None:
        import torch
        import torch.nn.functional  # noqa: F401 - imported once per worker; programs use it
        self.torch = torch
        self.onednn_paths = onednn_backends(torch)

    def accumulation_of(self, program: Program, env: dict, call: Call) -> Optional[str]:
        """The precision this call accumulates in, from the kernel path torch selects for it
        (``torch_common.conv_accumulation``); a call that is no convolution: the case dtype."""
        step = main_call(program)
        if step is None or len(step.expr.args) != 3 or "groups" not in step.expr.kwargs:
            return call.dtype
        x, w, bias = (evaluate(a, env, {}) for a in step.expr.args)
        kw = step.expr.kwargs
        return conv_accumulation(self.torch, self.onednn_paths, call, x, w, bias, kw["stride"], kw["padding"],
                                 kw["dilation"], "output_padding" in kw, kw.get("output_padding", (0, 0)),
                                 kw["groups"])

    def conv2d_transpose(self, call: Call) -> Program:
        plan = plan_conv_transpose(call, module=False)
        has_bias = "b" in call.arrays
        steps = operand_steps(call, "(C_in, C_out/groups, kh, kw): torch's own layout")
        bias_arg = Ref("bias") if has_bias and not plan.slice_from_full else None
        steps.append(Step("y", Expr("torch.nn.functional.conv_transpose2d", (Ref("x"), Ref("weight"), bias_arg),
                                    plan.kw), timed=True))
        if plan.slice_from_full:   # rows/cols past the full output are zeros; the bias after slicing
            steps += slice_steps(plan, call, "bias" if has_bias else None)
        return self._assemble(call, plan, steps)

    def conv2d(self, call: Call) -> Program:
        plan = plan_conv2d(call)
        steps = operand_steps(call, "(C_out, C_in/groups, kh, kw): torch's own layout")
        if plan.pre_pad:
            steps.append(Step("x_padded", Expr("torch.nn.functional.pad", (Ref("x"), plan.pre_pad)), "prepare"))
        bias_arg = Ref("bias") if "b" in call.arrays else None
        x = Ref("x_padded" if plan.pre_pad else "x")
        steps.append(Step("y", Expr("torch.nn.functional.conv2d", (x, Ref("weight"), bias_arg), plan.kw),
                          timed=True))
        return self._assemble(call, plan, steps)

    def avg_pool2d(self, call: Call) -> Program:
        return self._pool(call, "torch.nn.functional.avg_pool2d")

    def max_pool2d(self, call: Call) -> Program:
        return self._pool(call, "torch.nn.functional.max_pool2d")

    def _pool(self, call: Call, fn: str) -> Program:
        plan = plan_pool(call)
        steps = operand_steps(call, "") + [Step("y", Expr(fn, (Ref("x"),), plan.kw), timed=True)]
        return self._assemble(call, plan, steps)

    @staticmethod
    def _assemble(call: Call, plan, steps: list) -> Program:
        return Program("torch", (Import("torch"), Import("torch.nn.functional"), Import("numpy")), operands(call),
                       tuple(steps + finish_steps(call)), "out", plan.emulated, tuple(plan.notes),
                       leaves=leaves(call), result=result(call))
