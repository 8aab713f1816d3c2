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

from harness.backends.base import Backend, Call, NativeParam, Unsupported
from harness.backends.program import Attr, Import, Index, Method, Program, Ref, Step, evaluate, main_call
from harness.backends.program import Call as Expr
from harness.ops.conv2d_transpose.semantics import implied_output_padding
from harness.ops.pooling import frameworks as pooling_gaps


class TorchFunctionalBackend(Backend):
    id = "torch.functional"
    framework = "torch"
    distribution = "torch"
    environment = "torch"
    import_name = "torch"
    resident_bytes = 256 << 20      # measured 226 MiB after setup
    plans_calls = True
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
        """The precision this call accumulates in, from the kernel path torch selects for it.

        ``torch._C._select_conv_backend`` is the rule ``torch.convolution`` itself applies
        (aten/src/ATen/native/Convolution.cpp, ``select_conv_backend``). On CPU, float16/bfloat16
        go to oneDNN (``MkldnnTranspose``), which accumulates in float32, unless e.g. output_padding
        is not below both stride and dilation; then ``SlowTranspose2d`` runs a GEMM per tap and
        sums the taps with col2im in the tensor's own dtype, so the case dtype is the honest answer.
        Any other or unknown path: the case dtype (conservative).
        """
        dtype = call.dtype
        if dtype not in ("float16", "bfloat16"):
            return dtype
        select = getattr(self.torch._C, "_select_conv_backend", None)
        step = main_call(program)
        if select is None or step is None:
            return dtype
        try:
            # Only a convolution's call has this shape; any other call lands in the conservative answer.
            x, w, bias = (evaluate(a, env, {}) for a in step.expr.args)
            kw = step.expr.kwargs
            transposed = "output_padding" in kw
            padding = kw["padding"]
            if isinstance(padding, str):   # conv2d's 'same' (stride 1) / 'valid': the padding it resolves to
                padding = (0, 0) if padding == "valid" or call.resolved is None else call.resolved["pads"][::2]
            chosen = int(select(x, w, bias, list(kw["stride"]), list(padding), list(kw["dilation"]), transposed,
                                list(kw.get("output_padding", (0, 0))), kw["groups"]))
        except Exception:  # noqa: BLE001 - a call torch rejects (the call itself will say so), a call that is
            return dtype   # no convolution, or a private API that changed: the conservative answer
        return "float32" if chosen in self.onednn_paths else dtype

    def conv2d_transpose(self, call: Call) -> Program:
        p, r = call.params, call.resolved
        notes, emulated = [], False
        if call.layout == "NHWC":
            notes.append("NHWC emulated: input permuted to NCHW, output permuted back")
            emulated = True
        kw = dict(stride=tuple(p["stride"]), groups=p["groups"], dilation=tuple(p["dilation"]))
        slice_from_full = None
        if r is None:
            # A call the semantics rejects: pose it as natively as possible and let torch judge.
            if p["out_channels"] % p["groups"] and not call.arrays["x"].shape[1] % p["groups"]:
                raise Unsupported("conv_transpose2d has no out_channels: it is weight.shape[1]·groups, so "
                                  "out_channels not divisible by groups cannot be posed")
            if isinstance(p["padding"], str):
                if p.get("size_rule") == "keras":
                    raise Unsupported(f"torch has no padding {p['padding']!r}: an invalid size_rule 'keras' call "
                                      "cannot be posed")
                if p["output_shape"] is not None:
                    raise Unsupported("torch.nn.functional.conv_transpose2d has no output_size: "
                                      "an unreachable output_shape cannot be posed")
                if any(p["output_padding"]):
                    raise Unsupported(f"torch has no padding {p['padding']!r}: output_padding with it "
                                      "cannot be posed")
                notes.append(f"padding {p['padding']!r} has no native form; padding=0 passed so torch judges "
                             "the other parameters")
                emulated = True
                kw.update(padding=(0, 0), output_padding=tuple(p["output_padding"]))
            else:
                t, bo, l, rt = p["padding"]
                if t != bo or l != rt:
                    raise Unsupported("asymmetric padding has no native form in torch; the invalid call "
                                      "cannot be posed")
                op = tuple(p["output_padding"])
                if p["output_shape"] is not None:
                    # As for a valid call: output_shape becomes the output_padding it implies.
                    emulated, op = True, implied_output_padding(p, call.arrays["x"].shape)
                    notes.append(f"output_shape {p['output_shape']} expressed as output_padding={op}")
                kw.update(padding=(t, l), output_padding=op)
        else:
            t, bo, l, rt = r["crops"]
            if t == bo and l == rt:
                kw.update(padding=(t, l), output_padding=tuple(r["output_padding"]))
                if isinstance(p["padding"], str) or p["output_shape"] is not None:
                    emulated = True
                    rule = f" / output_padding {p['output_padding']} (size_rule 'keras')" \
                        if p.get("size_rule") == "keras" else ""
                    notes.append(f"padding {p['padding']!r} / output_shape {p['output_shape']}{rule} expressed as "
                                 f"padding={kw['padding']}, output_padding={kw['output_padding']}")
            else:
                emulated = True
                slice_from_full = (t, l, *r["out_hw"])
                kw.update(padding=(0, 0), output_padding=(0, 0))
                notes.append(f"asymmetric crops {tuple(r['crops'])}: full output (padding=0) sliced, "
                             "bias added after slicing")
        dtype = Attr(f"torch.{call.dtype}")

        def tensor(name):
            return Expr(Method(Expr("torch.from_numpy", (Ref(name),)), "to"), (dtype,))

        has_bias = "b" in call.arrays
        steps = [Step("x", tensor("x"), "prepare", comment="canonical NCHW (torch has no NHWC here)"),
                 Step("weight", tensor("w"), "prepare", comment="(C_in, C_out/groups, kh, kw): torch's own layout")]
        if has_bias:
            steps.append(Step("bias", tensor("b"), "prepare"))
        bias_arg = Ref("bias") if has_bias and not slice_from_full else None
        steps.append(Step("y", Expr("torch.nn.functional.conv_transpose2d", (Ref("x"), Ref("weight"), bias_arg), kw),
                          timed=True))
        if slice_from_full:   # rows/cols past the full output are zeros; the bias after slicing
            top, left, oh, ow = slice_from_full
            full_h, full_w = r["full_hw"]
            steps.append(Step("y", Index(Ref("y"), (slice(None), slice(None), slice(top, top + oh),
                                                   slice(left, left + ow))), "finish"))
            pad_h = oh - max(0, min(full_h, top + oh) - top)
            pad_w = ow - max(0, min(full_w, left + ow) - left)
            if pad_h or pad_w:
                steps.append(Step("y", Expr("torch.nn.functional.pad", (Ref("y"), (0, pad_w, 0, pad_h))), "finish"))
            if has_bias:
                steps.append(Step("y", Expr("torch.add", (Ref("y"), Expr(Method(Ref("bias"), "reshape"),
                                                                         (1, -1, 1, 1)))), "finish"))
        out = Attr("torch.float64" if call.dtype == "float64" else "torch.float32")
        steps.append(Step("out", Expr(Method(Expr(Method(Ref("y"), "to"), (out,)), "numpy")), "finish"))
        if call.layout == "NHWC":
            steps.append(Step("out", Expr("numpy.ascontiguousarray",
                                          (Expr(Method(Ref("out"), "transpose"), (0, 2, 3, 1)),)), "finish"))
        operands = ("x", "w", "b") if has_bias else ("x", "w")
        return Program("torch", (Import("torch"), Import("torch.nn.functional"), Import("numpy")), operands,
                       tuple(steps), "out", emulated, tuple(notes))

    def conv2d(self, call: Call) -> Program:
        p, r = call.params, call.resolved
        notes, emulated = [], False
        if call.layout == "NHWC":
            notes.append("NHWC emulated: input permuted to NCHW, output permuted back")
            emulated = True
        stride = tuple(p["stride"])
        kw = dict(stride=stride, dilation=tuple(p["dilation"]), groups=p["groups"])
        pre_pad = None
        if p["padding"] == "valid" or (p["padding"] == "same" and (stride == (1, 1) or r is None)):
            kw["padding"] = p["padding"]   # an invalid 'same' call too: torch judges it
        else:
            # 'same' with a stride (torch refuses it) is the padding it resolves to; an invalid call keeps
            # its literal explicit padding, so torch judges it
            t, bo, l, rt = r["pads"] if isinstance(p["padding"], str) else p["padding"]
            if isinstance(p["padding"], str):
                emulated = True
                notes.append(f"padding {p['padding']!r} with stride {list(stride)} (torch: stride 1 only) "
                             f"expressed as its padding {[t, bo, l, rt]}")
            if t == bo and l == rt:
                kw["padding"] = (t, l)
            else:
                emulated = True
                pre_pad = (l, rt, t, bo)
                kw["padding"] = (0, 0)
                notes.append(f"asymmetric padding {[t, bo, l, rt]}: input zero-padded with F.pad, padding=0")
        dtype = Attr(f"torch.{call.dtype}")

        def tensor(name):
            return Expr(Method(Expr("torch.from_numpy", (Ref(name),)), "to"), (dtype,))

        has_bias = "b" in call.arrays
        steps = [Step("x", tensor("x"), "prepare", comment="canonical NCHW (torch has no NHWC here)"),
                 Step("weight", tensor("w"), "prepare", comment="(C_out, C_in/groups, kh, kw): torch's own layout")]
        if has_bias:
            steps.append(Step("bias", tensor("b"), "prepare"))
        if pre_pad:
            steps.append(Step("x", Expr("torch.nn.functional.pad", (Ref("x"), pre_pad)), "prepare"))
        steps.append(Step("y", Expr("torch.nn.functional.conv2d",
                                    (Ref("x"), Ref("weight"), Ref("bias") if has_bias else None), kw), timed=True))
        out = Attr("torch.float64" if call.dtype == "float64" else "torch.float32")
        steps.append(Step("out", Expr(Method(Expr(Method(Ref("y"), "to"), (out,)), "numpy")), "finish"))
        if call.layout == "NHWC":
            steps.append(Step("out", Expr("numpy.ascontiguousarray",
                                          (Expr(Method(Ref("out"), "transpose"), (0, 2, 3, 1)),)), "finish"))
        operands = ("x", "w", "b") if has_bias else ("x", "w")
        return Program("torch", (Import("torch"), Import("torch.nn.functional"), Import("numpy")), operands,
                       tuple(steps), "out", emulated, tuple(notes))

    def avg_pool2d(self, call: Call) -> Program:
        return self._pool(call, "torch.nn.functional.avg_pool2d",
                          {"count_include_pad": call.params["count_include_pad"]})

    def max_pool2d(self, call: Call) -> Program:
        return self._pool(call, "torch.nn.functional.max_pool2d", {"dilation": tuple(call.params["dilation"])})

    def _pool(self, call: Call, fn: str, extra: dict) -> Program:
        """Both pooling operators: symmetric pads as ``padding=(ph, pw)``, 'same'/'valid' as the pads they give."""
        p, r = call.params, call.resolved
        gap = pooling_gaps.torch_gap(call.op, p, r, call.dtype)
        if gap:
            raise Unsupported(gap)
        pads = pooling_gaps.explicit_pads(p, r)
        notes, emulated = [], False
        if isinstance(p["padding"], str):
            emulated = True
            notes.append(f"padding {p['padding']!r} expressed as padding={(pads[0], pads[2])}")
        if call.layout == "NHWC":
            emulated = True
            notes.append("NHWC emulated: input permuted to NCHW, output permuted back")
        kw = dict(kernel_size=tuple(p["kernel_size"]), stride=tuple(p["stride"]), padding=(pads[0], pads[2]),
                  ceil_mode=p["ceil_mode"], **extra)
        out = Attr("torch.float64" if call.dtype == "float64" else "torch.float32")
        steps = [Step("x", Expr(Method(Expr("torch.from_numpy", (Ref("x"),)), "to"), (Attr(f"torch.{call.dtype}"),)),
                      "prepare", comment="canonical NCHW"),
                 Step("y", Expr(fn, (Ref("x"),), kw), timed=True),
                 Step("out", Expr(Method(Expr(Method(Ref("y"), "to"), (out,)), "numpy")), "finish")]
        if call.layout == "NHWC":
            steps.append(Step("out", Expr("numpy.ascontiguousarray",
                                          (Expr(Method(Ref("out"), "transpose"), (0, 2, 3, 1)),)), "finish"))
        return Program("torch", (Import("torch"), Import("torch.nn.functional"), Import("numpy")), ("x",),
                       tuple(steps), "out", emulated, tuple(notes))


def onednn_backends(torch) -> set[int]:
    """Values of ``torch._C._ConvBackend`` that run oneDNN (float32 accumulation for half types).

    ``Mkldnn`` is bound by name; ``MkldnnTranspose`` is not (torch 2.13's binding omits it and
    prints ``???``), but ATen's ``enum class ConvBackend`` declares it right after ``Mkldnn`` and
    before ``MkldnnEmpty``, so it is the one value between the two when that gap exists.
    """
    members = getattr(getattr(torch._C, "_ConvBackend", None), "__members__", {})
    if "Mkldnn" not in members:
        return set()
    found = {int(members["Mkldnn"])}
    if "MkldnnTranspose" in members:
        found.add(int(members["MkldnnTranspose"]))
    elif "MkldnnEmpty" in members and int(members["MkldnnEmpty"]) == int(members["Mkldnn"]) + 2:
        found.add(int(members["Mkldnn"]) + 1)
    return found
