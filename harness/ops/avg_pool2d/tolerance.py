"""What the tolerance model and the bench need from avg_pool2d: ``B``, the error bound and the work.

Derived in Note [Average pooling] (``semantics.py``): an output is a sum of
at most ``K = kh·kw`` inputs divided by a count, so ``ErrorBound(K, 2)``
(the sum, then the division and the rounding into the case dtype), scaled by
``B = Σ|x| / count``, the oracle run on ``|x|`` with the same divisor.
"""

from __future__ import annotations

import math

from harness.ops.avg_pool2d.oracle import magnitude
from harness.ops.spec import ErrorBound

__all__ = ["magnitude", "error_bound", "flops"]


def error_bound(resolved) -> ErrorBound:
    """``K = kh·kw`` elements summed (``Resolved.accumulation_length``), divided by a count: two roundings."""
    return ErrorBound(accumulation_length=resolved.accumulation_length, roundings=2)


def flops(resolved) -> float:
    """``kh·kw`` additions and one division per output element."""
    return float(math.prod(resolved.output_shape) * (resolved.accumulation_length + 1))
