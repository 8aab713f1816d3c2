"""Backend ``numpy``: the oracle's definition run in the case's dtype (DESIGN.md §3).

NumPy has no bfloat16; a bfloat16 case is computed in float32 and rounded to
bfloat16, and the result says so (``emulated``).
"""

from __future__ import annotations

import numpy as np

from harness.backends.base import Backend, Call, Native
from harness.data import round_to_dtype
from harness.ops.conv2d_transpose.oracle import reference


class NumpyBackend(Backend):
    id = "numpy"
    framework = "numpy"
    in_house = True
    distribution = "numpy"
    import_name = "numpy"
    resident_bytes = 48 << 20       # measured 34 MiB
    # bfloat16: computed in float32, rounded. float16 is computed in float16 (each tap's matmul is
    # rounded to float16 and the taps are summed in float16), so it keeps the case-dtype default.
    accumulation = {"bfloat16": "float32"}

    def conv2d_transpose(self, call: Call) -> Native:
        if call.resolved is None:
            # The oracle's definition computes whatever it is given; like every API, reject an invalid
            # call first (with the canonical semantics' reason) instead of returning a result.
            from harness.ops.conv2d_transpose.semantics import Params, resolve
            with self.native():   # the in-house implementation's own answer
                resolve(Params.model_validate(call.params))   # raises InvalidCall
            raise AssertionError("unreachable: the parent resolved this call as invalid")
        compute = "float32" if call.dtype == "bfloat16" else call.dtype
        out = self.timed(reference, call.params, call.arrays, np.dtype(compute))
        notes, emulated = [], False
        if call.dtype == "bfloat16":
            out, emulated = round_to_dtype(out, "bfloat16"), True
            notes.append("NumPy has no bfloat16: computed in float32, rounded to bfloat16")
        return Native(out, f"harness.ops.conv2d_transpose.oracle.reference(params, arrays, dtype={compute!r})",
                      emulated, notes)
