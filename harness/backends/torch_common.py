"""What PyTorch's two surfaces share: how a canonical call becomes torch's arguments, and the kernel path's
accumulation.

``torch.functional`` (``torch.nn.functional.conv_transpose2d`` ...) and ``torch.nn`` (the modules) call
the same ATen kernels with the same argument conventions; they differ in where the arguments go (a
function call, or a module's constructor and ``forward``) and in what the module adds: ``out_channels``
and ``ConvTranspose2d.forward(x, output_size=...)``. The planning here says, per operator, which
native arguments express a call, what has to be emulated around the call (asymmetric crops, ``same``
with a stride, NHWC) and which calls cannot be posed (``Unsupported``); each adapter turns a plan into
its own ``Program`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.backends.base import Call, Unsupported
from harness.backends.program import Attr, Index, Leaf, Method, Ref, Step
from harness.backends.program import Call as Expr
from harness.ops.conv2d_transpose.semantics import implied_output_padding, one_size_request
from harness.ops.pooling import frameworks as pooling_gaps


@dataclass
class Plan:
    """Native keyword arguments of one torch call, and what is emulated around it."""

    kw: dict
    emulated: bool = False
    notes: list = field(default_factory=list)
    output_size: Optional[tuple] = None       # ConvTranspose2d.forward(x, output_size=...) (modules only)
    slice_from_full: Optional[tuple] = None   # (top, left, H_out, W_out) of the full output (padding=0)
    pre_pad: Optional[tuple] = None           # F.pad's (left, right, top, bottom) before a conv2d

    def emulate(self, note: str) -> None:
        self.emulated = True
        self.notes.append(note)


def layout_plan(call: Call, kw: dict) -> Plan:
    plan = Plan(kw)
    if call.layout == "NHWC":
        plan.emulate("NHWC emulated: input permuted to NCHW, output permuted back")
    return plan


def plan_conv_transpose(call: Call, module: bool) -> Plan:
    """``conv_transpose2d``'s arguments; ``module``: the ``ConvTranspose2d`` module, which has
    ``out_channels`` and takes an ``output_shape`` natively as ``forward(x, output_size=...)``."""
    p, r = call.params, call.resolved
    plan = layout_plan(call, dict(stride=tuple(p["stride"]), groups=p["groups"], dilation=tuple(p["dilation"])))
    kw = plan.kw
    if r is None:
        # A call the semantics rejects: pose it as natively as possible and let torch judge. (torch.nn could
        # take both size requests, output_padding in the module and output_size in forward, but would
        # silently ignore the first: posing that is left to a finding of its own.)
        one_size_request(call, "torch.nn.ConvTranspose2d as conform poses it (output_size in forward)" if module
                         else "torch.nn.functional.conv_transpose2d")
        if not module and p["out_channels"] % p["groups"] and not call.arrays["x"].shape[1] % p["groups"]:
            raise Unsupported("conv_transpose2d has no out_channels: it is weight.shape[1]·groups, so "
                              "out_channels not divisible by groups cannot be posed")
        if isinstance(p["padding"], str):
            if p.get("size_rule") == "keras":
                raise Unsupported(f"torch has no padding {p['padding']!r}: an invalid size_rule 'keras' call "
                                  "cannot be posed")
            if p["output_shape"] is not None and not module:
                raise Unsupported("torch.nn.functional.conv_transpose2d has no output_size: "
                                  "an unreachable output_shape cannot be posed")
            if p["output_shape"] is not None:
                raise Unsupported(f"torch has no padding {p['padding']!r} for transposed convolution: "
                                  "an unreachable output_shape with it cannot be posed")
            if any(p["output_padding"]):
                raise Unsupported(f"torch has no padding {p['padding']!r}: output_padding with it "
                                  "cannot be posed")
            plan.emulate(f"padding {p['padding']!r} has no native form; padding=0 passed so torch judges "
                         "the other parameters")
            kw.update(padding=(0, 0), output_padding=tuple(p["output_padding"]))
            return plan
        t, bo, l, rt = p["padding"]
        if t != bo or l != rt:
            raise Unsupported("asymmetric padding has no native form in torch; the invalid call "
                              "cannot be posed")
        op = tuple(p["output_padding"])
        if p["output_shape"] is not None:
            if module:   # torch judges the size itself
                kw.update(padding=(t, l))
                plan.output_size = tuple(p["output_shape"])
                return plan
            # As for a valid call: output_shape becomes the output_padding it implies.
            op = implied_output_padding(p, call.arrays["x"].shape)
            plan.emulate(f"output_shape {p['output_shape']} expressed as output_padding={op}")
        kw.update(padding=(t, l), output_padding=op)
        return plan
    t, bo, l, rt = r["crops"]
    if t == bo and l == rt:
        kw["padding"] = (t, l)
        if module and p["output_shape"] is not None:
            plan.output_size = tuple(r["out_hw"])
            if isinstance(p["padding"], str):
                plan.emulate(f"padding {p['padding']!r} with output_shape {p['output_shape']} expressed as "
                             f"padding={kw['padding']} and forward(x, output_size={list(r['out_hw'])})")
            return plan
        kw["output_padding"] = tuple(r["output_padding"])
        if isinstance(p["padding"], str) or p["output_shape"] is not None:
            rule = f" / output_padding {p['output_padding']} (size_rule 'keras')" if p.get("size_rule") == "keras" else ""
            plan.emulate(f"padding {p['padding']!r} / output_shape {p['output_shape']}{rule} expressed as "
                         f"padding={kw['padding']}, output_padding={kw['output_padding']}")
        return plan
    plan.slice_from_full = (t, l, *r["out_hw"])
    kw.update(padding=(0, 0), output_padding=(0, 0))
    plan.emulate(f"asymmetric crops {tuple(r['crops'])}: full output (padding=0) sliced, bias added after slicing")
    return plan


def slice_steps(plan: Plan, call: Call, bias: Optional[str]) -> list[Step]:
    """After a ``padding=0`` transposed convolution: the canonical crops, zeros past the full output, then
    the bias (``bias``: the name of the bias tensor, or None)."""
    top, left, oh, ow = plan.slice_from_full
    full_h, full_w = call.resolved["full_hw"]
    steps = [Step("y", Index(Ref("y"), (slice(None), slice(None), slice(top, top + oh), slice(left, left + ow))),
                  "finish")]
    pad_h = oh - max(0, min(full_h, top + oh) - top)
    pad_w = ow - max(0, min(full_w, left + ow) - left)
    if pad_h or pad_w:
        steps.append(Step("y", Expr("torch.nn.functional.pad", (Ref("y"), (0, pad_w, 0, pad_h))), "finish"))
    if bias:
        steps.append(Step("y", Expr("torch.add", (Ref("y"), Expr(Method(Ref(bias), "reshape"), (1, -1, 1, 1)))),
                          "finish"))
    return steps


def plan_conv2d(call: Call) -> Plan:
    """``conv2d``'s arguments: ``'valid'`` native, ``'same'`` native with stride 1 (torch refuses it with a
    stride: then the padding it resolves to, emulated), explicit symmetric native, asymmetric by ``F.pad``."""
    p, r = call.params, call.resolved
    stride = tuple(p["stride"])
    plan = layout_plan(call, dict(stride=stride, dilation=tuple(p["dilation"]), groups=p["groups"]))
    if p["padding"] == "same_lower" and r is None:
        raise Unsupported("torch has no 'same_lower' padding: an invalid call with it cannot be posed")
    if p["padding"] == "valid" or (p["padding"] == "same" and (stride == (1, 1) or r is None)):
        plan.kw["padding"] = p["padding"]   # an invalid 'same' call too: torch judges it
        return plan
    # 'same' with a stride (torch refuses it) and 'same_lower' (torch has no such mode) are the padding they
    # resolve to; an invalid call keeps its literal explicit padding, so torch judges it
    t, bo, l, rt = r["pads"] if isinstance(p["padding"], str) else p["padding"]
    if isinstance(p["padding"], str):
        why = ("torch has no such mode" if p["padding"] == "same_lower"
               else f"with stride {list(stride)} (torch: stride 1 only)")
        plan.emulate(f"padding {p['padding']!r} ({why}) expressed as its padding {[t, bo, l, rt]}")
    if t == bo and l == rt:
        plan.kw["padding"] = (t, l)
    else:
        plan.pre_pad = (l, rt, t, bo)
        plan.kw["padding"] = (0, 0)
        plan.emulate(f"asymmetric padding {[t, bo, l, rt]}: input zero-padded with F.pad, padding=0")
    return plan


def plan_pool(call: Call) -> Plan:
    """Both pooling operators: symmetric pads as ``padding=(ph, pw)``, 'same'/'valid' as the pads they give."""
    p, r = call.params, call.resolved
    gap = pooling_gaps.torch_gap(call.op, p, r, call.dtype)
    if gap:
        raise Unsupported(gap)
    pads = pooling_gaps.explicit_pads(p, r)
    kw = dict(kernel_size=tuple(p["kernel_size"]), stride=tuple(p["stride"]), padding=(pads[0], pads[2]),
              ceil_mode=p["ceil_mode"])
    if call.op == "avg_pool2d":
        kw["count_include_pad"] = p["count_include_pad"]
    else:
        kw["dilation"] = tuple(p["dilation"])
    plan = layout_plan(call, kw)
    if isinstance(p["padding"], str):
        plan.emulate(f"padding {p['padding']!r} expressed as padding={(pads[0], pads[2])}")
    return plan


def tensor(name: str, dtype: str) -> Expr:
    """``torch.from_numpy(name).to(torch.<dtype>)``."""
    return Expr(Method(Expr("torch.from_numpy", (Ref(name),)), "to"), (Attr(f"torch.{dtype}"),))


def operand_steps(call: Call, weight_comment: str) -> list[Step]:
    """x, weight (and bias) as torch tensors of the case dtype (canonical NCHW)."""
    steps = [Step("x", tensor("x", call.dtype), "prepare", comment="canonical NCHW (torch has no NHWC here)")]
    if "w" in call.arrays:
        steps.append(Step("weight", tensor("w", call.dtype), "prepare", comment=weight_comment))
    if "b" in call.arrays:
        steps.append(Step("bias", tensor("b", call.dtype), "prepare"))
    return steps


def finish_steps(call: Call) -> list[Step]:
    """``y`` to a NumPy array (float32, or float64 for float64 cases) in the case layout; detached, as it
    requires grad when a module's Parameters or a backward call's leaves do."""
    out = Attr("torch.float64" if call.dtype == "float64" else "torch.float32")
    y = Expr(Method(Ref("y"), "detach"))
    steps = [Step("out", Expr(Method(Expr(Method(y, "to"), (out,)), "numpy")), "finish")]
    if call.layout == "NHWC":
        steps.append(Step("out", Expr("numpy.ascontiguousarray",
                                      (Expr(Method(Ref("out"), "transpose"), (0, 2, 3, 1)),)), "finish"))
    return steps


def operands(call: Call) -> tuple[str, ...]:
    return tuple(name for name in ("x", "w", "b") if name in call.arrays)


def conv_accumulation(torch, onednn_paths: set[int], call: Call, x, w, bias, stride, padding, dilation,
                      transposed: bool, output_padding, groups: int) -> str:
    """The precision a convolution accumulates in, from the kernel path torch selects for it.

    ``torch._C._select_conv_backend`` is the rule ``torch.convolution`` itself applies
    (aten/src/ATen/native/Convolution.cpp, ``select_conv_backend``). On CPU, float16/bfloat16
    go to oneDNN (``MkldnnTranspose``), which accumulates in float32, unless e.g. output_padding
    is not below both stride and dilation; then ``SlowTranspose2d`` runs a GEMM per tap and
    sums the taps with col2im in the tensor's own dtype, so the case dtype is the honest answer.
    Any other or unknown path: the case dtype (conservative).
    """
    dtype = call.dtype
    select = getattr(torch._C, "_select_conv_backend", None)
    if dtype not in ("float16", "bfloat16") or select is None:
        return dtype
    if isinstance(padding, str):   # conv2d's 'same' (stride 1) / 'valid': the padding it resolves to
        padding = (0, 0) if padding == "valid" or call.resolved is None else call.resolved["pads"][::2]
    try:
        chosen = int(select(x, w, bias, list(stride), list(padding), list(dilation), transposed,
                            list(output_padding), groups))
    except Exception:  # noqa: BLE001 - a call torch rejects (the call itself will say so), or a private
        return dtype   # API that changed: the conservative answer
    return "float32" if chosen in onednn_paths else dtype


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


def leaves(call: Call, weight=Ref("weight"), bias=Ref("bias")) -> tuple[Leaf, ...]:
    """The differentiable operands (Note [Gradients] in ``autodiff.py``): the tensors made from the canonical
    operands, or a module's Parameters (``weight``/``bias`` given as ``Method(Ref("net"), "weight")``);
    torch's layouts are the canonical ones."""
    named = {"x": Ref("x"), "w": weight, "b": bias}
    return tuple(Leaf(name, value) for name, value in named.items() if name in call.arrays)


def result(call: Call) -> Leaf:
    """``y``, NCHW: the case layout, or NHWC as ``y.permute(0, 2, 3, 1)``."""
    return Leaf("output", Ref("y"), (0, 2, 3, 1) if call.layout == "NHWC" else None)
