"""What the tolerance model and the bench need from max_pool2d: ``B``, the error bound and the work.

Derived in Note [Max pooling] (``semantics.py``): a maximum of values already
representable in the case dtype is one of them, so nothing is summed and
nothing is rounded: ``ErrorBound(0, 0)`` and ``B = 0``. The bound is then 0
(plus any ``atol`` a case sets): the output must equal the oracle exactly,
and −∞ (a window of padding only) must sit where the oracle has it.
"""

from __future__ import annotations

import math

from harness.ops.max_pool2d.oracle import magnitude
from harness.ops.spec import ErrorBound

__all__ = ["magnitude", "error_bound", "flops"]


def error_bound(resolved) -> ErrorBound:
    """Exact: no term summed, no rounding."""
    return ErrorBound(accumulation_length=0, roundings=0)


def flops(resolved) -> float:
    """``kh·kw − 1`` comparisons per output element (counted as operations, for ``conform bench``)."""
    return float(math.prod(resolved.output_shape) * max(resolved.accumulation_length - 1, 1))
