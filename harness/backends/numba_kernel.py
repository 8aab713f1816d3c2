"""Backend ``numba``: the in-house JIT kernel (``harness.ops.conv2d_transpose.numba_kernel``).

It consumes the resolved call (crops and output size), since it *is* an
implementation of the canonical semantics rather than a foreign API; a call
the semantics rejects is rejected here with the semantics' reason.
"""

from __future__ import annotations

from harness.backends.base import Backend, Call, Native


class NumbaBackend(Backend):
    id = "numba"
    framework = "numba"
    distribution = "numba"
    import_name = "numba"
    in_house = True
    resident_bytes = 192 << 20      # measured 159 MiB after setup and compilation
    accumulation = {"float16": "float32", "bfloat16": "float32"}

    def setup(self) -> None:
        from harness.ops.conv2d_transpose import numba_kernel as numba_conv2d_transpose
        self.kernel = numba_conv2d_transpose.conv2d_transpose

    def conv2d_transpose(self, call: Call) -> Native:
        r = call.resolved
        if r is None:
            from harness.ops.conv2d_transpose.semantics import Params, resolve
            with self.native():   # the in-house implementation's own answer
                resolve(Params.model_validate(call.params))   # raises InvalidCall with the reason
            raise AssertionError("unreachable: the parent resolved this call as invalid")
        a = call.arrays
        kwargs = dict(stride=tuple(r["stride"]), dilation=tuple(r["dilation"]), groups=r["groups"],
                      crops=tuple(r["crops"]), out_hw=tuple(r["out_hw"]), layout=call.layout, dtype=call.dtype)
        out = self.timed(self.kernel, a["x"], a["w"], a.get("b"), **kwargs)
        text = "harness.ops.conv2d_transpose.numba_kernel.conv2d_transpose(x, w, b, " + ", ".join(
            f"{k}={v!r}" for k, v in kwargs.items()) + ")"
        return Native(out, text)
