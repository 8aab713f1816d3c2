"""What MindSpore's two surfaces share: the CPU build's dtype gaps, tensors in and out, and the program frame.

``mindspore.nn`` (cells) and ``mindspore.ops`` (the primitives the cells are built on) run the same CPU
kernels, so they have the same dtype gaps (measured on MindSpore 2.10.0, CPU, below) and the same
accumulation (Note [Tolerance model] in harness/compare.py); each adapter declares its own parameters.
"""

from __future__ import annotations

import re
from typing import Optional

from harness.backends.base import Call
from harness.backends.program import Attr, Import, Leaf, Method, Program, Ref, Step
from harness.backends.program import Call as Expr

UNSUPPORTED_DTYPES = {
    "float64": "MindSpore's CPU Conv2DTranspose accepts only float16/float32/bfloat16/int tensors",
    "bfloat16": ("MindSpore's CPU kernel Conv2DBackpropInput has no bfloat16 kernel, and MindSpore 2.10's "
                 "bfloat16 Tensors refuse NumPy 2 (built against NumPy 1.x)"),
}

UNSUPPORTED_CONV2D_DTYPES = {
    "float64": "MindSpore's CPU Conv2D accepts only bfloat16/float16/float32/int tensors",
    "bfloat16": UNSUPPORTED_DTYPES["bfloat16"],
}

#: Measured, not assumed: with GLOG_v=1, MindSpore 2.10's CPU kernel selection logs
#: "Conv2DBackpropInput kernel attr info: input[Tensor Float32 ...] output[Tensor Float32 ...]" for a
#: float16 call and inserts casts around it (insert_cast_cpu.cc): the only CPU kernel is oneDNN in
#: float32, whatever the parameters, so float16 is accumulated in float32 (bfloat16 is unsupported).
CONV_ACCUMULATION = {"float16": "float32"}

IMPORTS = (Import("mindspore"), Import("mindspore.nn"), Import("mindspore.ops"), Import("numpy"))
ENVIRONMENT = (("GLOG_v", "3"),)      # MindSpore's C++ log: errors only
SETUP = ("mindspore.set_context(mode=mindspore.PYNATIVE_MODE)",)   # the CPU wheel's only device is the CPU


def gradient_gap(exc: BaseException) -> Optional[str]:
    """``unsupported_reason`` of both surfaces: a backward kernel without the case's dtype (measured: CPU
    ``AvgPool3DGrad``, behind ``ops.avg_pool2d`` and ``nn.AvgPool2d`` with padding, refuses float64 "must be a
    type of {Tensor[Float16], Tensor[Float32]}") is a gap of the build, as the forward's dtype gaps are."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    found = re.match(r"For primitive\[(\w+Grad\w*)\], the input argument\[\w+\] must be a type of (\{[^}]*\}), "
                     r"but got Tensor\[(\w+)\]", message)
    if found is None:
        return None
    primitive, accepted, dtype = found.groups()
    return f"MindSpore's CPU {primitive} (the gradient) has no {dtype.lower()} kernel: it accepts {accepted}"


def setup() -> None:
    import os
    os.environ.setdefault("GLOG_v", "3")
    import mindspore as ms
    import mindspore.ops  # noqa: F401 - imported once per worker; programs use it
    ms.set_context(mode=ms.PYNATIVE_MODE)


def tensor(name: str, dtype: str, via: str = "float32") -> Expr:
    """``mindspore.Tensor(name, mindspore.<via>).astype(mindspore.<dtype>)``."""
    return Expr(Method(Expr("mindspore.Tensor", (Ref(name), Attr(f"mindspore.{via}"))), "astype"),
                (Attr(f"mindspore.{dtype}"),))


def finish_steps(call: Call, out: str = "float32") -> list[Step]:
    """Wait for the kernel (PyNative dispatches asynchronously; timed), then ``y`` as NumPy in the case layout."""
    steps = [Step(None, Expr("mindspore.runtime.synchronize"), timed=True),
             Step("out", Expr(Method(Expr(Method(Ref("y"), "astype"), (Attr(f"mindspore.{out}"),)), "asnumpy")),
                  "finish")]
    if call.layout == "NHWC":
        steps.append(Step("out", Expr("numpy.ascontiguousarray",
                                      (Expr(Method(Ref("out"), "transpose"), (0, 2, 3, 1)),)), "finish"))
    return steps


def pool_accumulation(call: Call) -> tuple[str, list[str]]:
    """The precision a pooling call is judged by, with the note that says so.

    Measured (MindSpore 2.10, CPU): float64 averages come back with float32 rounding errors (a 2x2 mean
    of x/3 is off by 4e-8; docs/findings.md#pl5), so they are judged as float32 arithmetic. float16: no
    float32 accumulation is known for these kernels, so the case dtype (conservative), not the
    declaration measured for the convolutions. A maximum is exact either way.
    """
    if call.op == "avg_pool2d" and call.dtype == "float64":
        return "float32", ["float64 average computed in float32 by MindSpore's CPU kernels (measured): judged "
                           "with float32 accumulation"]
    return call.dtype, []


def leaves(call: Call, weight=Ref("weight"), bias=Ref("bias")) -> tuple[Leaf, ...]:
    """The differentiable operands (Note [Gradients] in ``autodiff.py``): the Tensors made from the canonical
    operands (``mindspore.vjp``'s inputs), or a cell's Parameters (``Method(Ref("net"), "weight")``, its
    weights). MindSpore's layouts are the canonical ones (NHWC is emulated on the output side only)."""
    named = {"x": Ref("x"), "w": weight, "b": bias}
    return tuple(Leaf(name, value) for name, value in named.items() if name in call.arrays)


def result(call: Call) -> Leaf:
    """``y``, NCHW: the case layout, or NHWC as ``y.transpose(0, 2, 3, 1)``."""
    return Leaf("output", Ref("y"), (0, 2, 3, 1) if call.layout == "NHWC" else None)


def program(call: Call, steps: list, emulated: bool, notes: list, **extra) -> Program:
    return Program("mindspore", IMPORTS, tuple(n for n in ("x", "w", "b") if n in call.arrays), tuple(steps),
                   "out", emulated, tuple(notes), environment=ENVIRONMENT, setup=SETUP,
                   leaves=leaves(call), result=result(call), **extra)
