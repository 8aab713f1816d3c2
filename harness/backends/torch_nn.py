"""Backend ``torch.nn``: the modules ``ConvTranspose2d``, ``Conv2d``, ``AvgPool2d`` and ``MaxPool2d``.

Each call builds the module with the case's parameters (``dtype`` as a factory argument), loads the
canonical weights and bias into it with ``load_state_dict`` (the module's own random initialisation
is replaced; the canonical layouts are the modules' own), and calls it. The modules call the same
ATen kernels as ``torch.nn.functional`` with the same argument conventions, so the planning (which
native arguments, what is emulated, what cannot be posed) and the kernel-path accumulation are
shared with ``torch.functional`` (``harness/backends/torch_common.py``). What the modules add:

* ``ConvTranspose2d.forward(x, output_size=...)``: a canonical ``output_shape`` is passed natively
  (with the symmetric crops as ``padding``). torch derives ``output_padding = output_size − min``
  with ``min = (H−1)·s − 2·p + d·(k−1) + 1`` and accepts ``min ≤ output_size ≤ min + s − 1``
  (``_ConvTransposeNd._output_padding``, torch/nn/modules/conv.py), while ``output_padding``
  itself may reach ``max(s, d) − 1`` (``check_output_padding``): with dilation above the stride an
  output size the canonical semantics (and ``output_padding``) reach is rejected by ``forward``
  (docs/findings.md#tn1).
* ``out_channels`` is a constructor argument, so an ``out_channels`` not divisible by ``groups`` is
  posed (the module rejects it); ``torch.functional`` cannot pose it.
* ``Conv2d(padding='same'|'valid')``: native; ``'same'`` only with stride 1 (the constructor
  refuses it for strided convolutions), otherwise the padding it resolves to, emulated.

Emulated as for ``torch.functional``: ``same``/``valid`` for the transposed module (no such padding)
as ``padding``/``output_padding`` or ``output_size``; asymmetric crops by slicing the full output of a
``padding=0`` module (its bias then added after slicing); asymmetric ``conv2d`` padding with ``F.pad``
first; NHWC by permuting (the modules are NCHW). Pooling gaps (asymmetric padding, pad > k/2) are
torch's (``harness/ops/pooling/frameworks.py``).
"""

from __future__ import annotations

from typing import Optional

from harness.backends import torch_native
from harness.backends.base import Backend, Call, NativeParam
from harness.backends.program import Attr, Import, Method, Program, Ref, Step, main_call
from harness.backends.program import Call as Expr
from harness.backends.torch_common import (Plan, conv_accumulation, finish_steps, leaves, onednn_backends,
                                           operand_steps, operands, plan_conv2d, plan_conv_transpose, plan_pool,
                                           result, slice_steps)
from harness.backends.torch_functional import TorchFunctionalBackend

_FUNCTIONAL = TorchFunctionalBackend.PARAMETERS


def _module_params(op: str, weight_layout: str) -> dict[str, NativeParam]:
    """A convolution module's declarations: the constructor takes the sizes, ``load_state_dict`` the tensors."""
    functional = _FUNCTIONAL[op]
    return {
        **functional,
        "x": NativeParam("input", "Tensor (N, C_in, H, W)", "the module's input; NCHW only", position=0,
                         call="forward"),
        "w": NativeParam("weight", f"Parameter {weight_layout}", "randomly initialised by the constructor; "
                         "conform loads the canonical weights with load_state_dict", call="state"),
        "kernel_size": NativeParam("kernel_size", "int or (kh, kw)", "", position=2),
        "in_channels": NativeParam("in_channels", "int", "must equal the input's channels", position=0),
        "out_channels": NativeParam("out_channels", "int", "divisible by groups", position=1),
        "bias": NativeParam("bias", "bool", "default True (a randomly initialised bias Parameter)"),
        "b": NativeParam("bias", "Parameter (C_out,)", "loaded with load_state_dict", call="state"),
        "dtype": NativeParam("dtype", "torch dtype", "factory argument: the Parameters' dtype (default float32)"),
    }


class TorchNnBackend(Backend):
    id = "torch.nn"
    framework = "torch"
    distribution = "torch"
    environment = "torch"
    import_name = "torch"
    resident_bytes = 256 << 20      # as torch.functional: the same import
    plans_calls = True
    NATIVE = torch_native.MODULES
    PARAMETERS = {
        "conv2d_transpose": {
            **_module_params("conv2d_transpose", "(C_in, C_out/groups, kh, kw)"),
            "output_shape": NativeParam("output_size", "list[int] [H_out, W_out] (or with N, C)",
                                        "forward(x, output_size=...): min ≤ size ≤ min + stride − 1, "
                                        "with the symmetric padding", call="forward"),
            "padding": NativeParam("padding", "int or (ph, pw)", "symmetric crops only; asymmetric crops "
                                   "emulated by slicing the full output (padding=0)"),
            "padding_mode": NativeParam(None, "", "no 'same'/'valid' for ConvTranspose2d: emulated as "
                                        "padding with output_padding or output_size, or a slice", emulated=True),
        },
        "conv2d": {
            **_module_params("conv2d", "(C_out, C_in/groups, kh, kw)"),
            "padding": NativeParam("padding", "int or (ph, pw)", "symmetric only; asymmetric emulated with "
                                   "F.pad first"),
            "padding_mode": NativeParam("padding", "'same' | 'valid'", "'same' only with stride 1 (else the "
                                        "resolved padding, emulated); odd totals: extra row/column bottom/right"),
        },
        "avg_pool2d": {**_FUNCTIONAL["avg_pool2d"],
                       "x": NativeParam("input", "Tensor (N, C, H, W)", "the module's input; NCHW only",
                                        position=0, call="forward"),
                       "dtype": NativeParam(None, "", "the input's dtype", via="input")},
    }
    PARAMETERS["max_pool2d"] = {
        **{k: v for k, v in PARAMETERS["avg_pool2d"].items() if k != "count_include_pad"},
        "dilation": NativeParam("dilation", "int or (dh, dw)", "default 1"),
    }
    # No class-level `accumulation`: each call reports the kernel path torch chose (`accumulation_of`).

    def setup(self) -> None:
        import torch
        self.torch = torch
        self.onednn_paths = onednn_backends(torch)

    def accumulation_of(self, program: Program, env: dict, call: Call) -> Optional[str]:
        """As torch.functional's: the kernel path ``torch.convolution`` selects for the module's arguments
        (asked before the module is built, from its constructor's arguments and the prepared tensors)."""
        step = main_call(program)
        module = step.expr.fn if step is not None else ""
        if module not in ("torch.nn.ConvTranspose2d", "torch.nn.Conv2d"):
            return call.dtype
        kw = step.expr.kwargs
        transposed = module == "torch.nn.ConvTranspose2d"
        output_padding = kw.get("output_padding", (0, 0))
        if transposed and "output_padding" not in kw and call.resolved is not None:   # given by output_size
            output_padding = tuple(call.resolved["output_padding"])
        bias = env.get("bias") if kw["bias"] else None
        x = env.get("x_padded", env["x"])     # the convolution's own input
        return conv_accumulation(self.torch, self.onednn_paths, call, x, env["weight"], bias, kw["stride"],
                                 kw["padding"], kw["dilation"], transposed, output_padding, kw["groups"])

    def conv2d_transpose(self, call: Call) -> Program:
        plan = plan_conv_transpose(call, module=True)
        bias = "b" in call.arrays and not plan.slice_from_full   # sliced: the bias is added after the slice
        steps = operand_steps(call, "(C_in, C_out/groups, kh, kw): the module's own layout")
        forward = {"output_size": list(plan.output_size)} if plan.output_size else {}
        steps += self._module(call, "torch.nn.ConvTranspose2d", plan, bias, forward)
        if plan.slice_from_full:
            steps += slice_steps(plan, call, "bias" if "b" in call.arrays else None)
        return self._assemble(call, plan, steps, bias_in_module=bias)

    def conv2d(self, call: Call) -> Program:
        plan = plan_conv2d(call)
        steps = operand_steps(call, "(C_out, C_in/groups, kh, kw): the module's own layout")
        if plan.pre_pad:
            steps.append(Step("x_padded", Expr("torch.nn.functional.pad", (Ref("x"), plan.pre_pad)), "prepare"))
        steps += self._module(call, "torch.nn.Conv2d", plan, "b" in call.arrays, {},
                              Ref("x_padded" if plan.pre_pad else "x"))
        return self._assemble(call, plan, steps, bias_in_module="b" in call.arrays)

    def avg_pool2d(self, call: Call) -> Program:
        return self._pool(call, "torch.nn.AvgPool2d")

    def max_pool2d(self, call: Call) -> Program:
        return self._pool(call, "torch.nn.MaxPool2d")

    def _pool(self, call: Call, module: str) -> Program:
        plan = plan_pool(call)
        steps = operand_steps(call, "") + [Step("net", Expr(module, (), plan.kw)),
                                           Step("y", Expr(Ref("net"), (Ref("x"),)), timed=True)]
        return self._assemble(call, plan, steps)

    @staticmethod
    def _module(call: Call, module: str, plan: Plan, bias: bool, forward: dict, x: Ref = Ref("x")) -> list[Step]:
        """Build the module (its constructor validates the arguments: torch's answer, not timed), load the
        canonical tensors into it, call it."""
        p = call.params
        c_in = call.arrays["x"].shape[1]
        state = {"weight": Ref("weight"), **({"bias": Ref("bias")} if bias else {})}
        return [Step("net", Expr(module, (c_in, p["out_channels"], tuple(p["kernel_size"])),
                                 {**plan.kw, "bias": bias, "dtype": Attr(f"torch.{call.dtype}")})),
                Step(None, Expr(Method(Ref("net"), "load_state_dict"), (state,))),
                Step("y", Expr(Ref("net"), (x,), forward), timed=True)]

    @staticmethod
    def _assemble(call: Call, plan: Plan, steps: list, bias_in_module: bool = False) -> Program:
        """The program; its leaves are the module's Parameters (the bias tensor when it is added after a slice)."""
        bias = Method(Ref("net"), "bias") if bias_in_module else Ref("bias")
        return Program("torch", (Import("torch"), Import("torch.nn.functional"), Import("numpy")), operands(call),
                       tuple(steps + finish_steps(call)), "out", plan.emulated, tuple(plan.notes),
                       leaves=leaves(call, Method(Ref("net"), "weight"), bias), result=result(call))

