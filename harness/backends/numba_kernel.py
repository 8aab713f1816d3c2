"""Backend ``numba``: the in-house JIT kernels (``harness/ops/<op>/numba_kernel.py``).

A kernel consumes the resolved call (crops and output size), since it *is*
an implementation of the canonical semantics rather than a foreign API; a
call the semantics rejects is rejected here with the semantics' reason.
"""

from __future__ import annotations

from harness.backends.base import Backend, Call
from harness.backends.numpy_ref import semantics_rejection
from harness.backends.program import Import, Program, Ref, Step
from harness.backends.program import Call as Expr

KERNEL = "harness.ops.conv2d_transpose.numba_kernel"
CONV2D_KERNEL = "harness.ops.conv2d.numba_kernel"


class NumbaBackend(Backend):
    id = "numba"
    framework = "numba"
    distribution = "numba"
    import_name = "numba"
    in_house = True
    gradient_gap = "no gradient: conform has no numba gradient kernels"
    plans_calls = True
    resident_bytes = 192 << 20      # measured 159 MiB after setup and compilation
    accumulation = {"float16": "float32", "bfloat16": "float32"}

    def setup(self) -> None:
        import importlib
        for kernel in (KERNEL, CONV2D_KERNEL):   # compiled (or loaded) once per worker, before any call is timed
            importlib.import_module(kernel)

    def conv2d_transpose(self, call: Call) -> Program:
        r = call.resolved
        if r is None:
            return semantics_rejection(call, "numba")
        kwargs = dict(stride=tuple(r["stride"]), dilation=tuple(r["dilation"]), groups=r["groups"],
                      crops=tuple(r["crops"]), out_hw=tuple(r["out_hw"]), layout=call.layout, dtype=call.dtype)
        bias = Ref("b") if "b" in call.arrays else None
        step = Step("y", Expr(f"{KERNEL}.conv2d_transpose", (Ref("x"), Ref("w"), bias), kwargs), timed=True)
        return Program("numba", (Import(KERNEL, embed=True),), tuple(call.arrays), (step,), "y")

    def conv2d(self, call: Call) -> Program:
        r = call.resolved
        if r is None:
            return semantics_rejection(call, "numba")
        kwargs = dict(stride=tuple(r["stride"]), dilation=tuple(r["dilation"]), groups=r["groups"],
                      pads=tuple(r["pads"]), out_hw=tuple(r["out_hw"]), layout=call.layout, dtype=call.dtype)
        bias = Ref("b") if "b" in call.arrays else None
        step = Step("y", Expr(f"{CONV2D_KERNEL}.conv2d", (Ref("x"), Ref("w"), bias), kwargs), timed=True)
        return Program("numba", (Import(CONV2D_KERNEL, embed=True),), tuple(call.arrays), (step,), "y")
