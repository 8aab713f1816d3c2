"""What the tolerance model needs from conv2d: the magnitude ``B`` and the error-bound parameters.

Note [conv2d error bound]
-------------------------
An output element is a sum of at most ``K = C_in/groups · kh · kw`` products
(padding terms are absent, Note [conv2d semantics]) plus a bias, rounded into
the case dtype after the sum and after the bias: two roundings, as for
conv2d_transpose. The bound of Note [Tolerance model] (``harness/compare.py``)
scales with ``B = Σ|x·w| + |b|``, which is the operator applied to the
absolute operands: ``conv2d(|x|, |w|) + |b|``, computed by the float64 oracle.

Note [conv2d gradient error bound]
----------------------------------
Each gradient (``gradient.py``) is one sum of products, rounded once into the
case dtype: ``dx`` sums ``K = C_out/groups · kh · kw`` products ``dy · w``,
``dw`` and ``db`` sum over the ``N · H_out · W_out`` output positions of
their channel. Each is bilinear with non-negative coefficients, so its ``B``
is the gradient oracle on ``|x|``, ``|w|``, ``|dy|``; the accumulation is
judged at the case dtype whatever the forward declares (other kernels).
"""

from __future__ import annotations

import numpy as np

from harness.ops.conv2d.oracle import reference
from harness.ops.spec import ErrorBound


def magnitude(params: dict, arrays: dict) -> np.ndarray:
    """``B = conv2d(|x|, |w|) + |b|`` in float64, in the case layout."""
    return reference(params, {name: np.abs(value) for name, value in arrays.items()})


def error_bound(resolved) -> ErrorBound:
    """``K`` products summed (``Resolved.accumulation_length``), then two roundings (sum, bias)."""
    return ErrorBound(accumulation_length=resolved.accumulation_length, roundings=2)


def gradient_terms(params: dict, arrays: dict, dy: np.ndarray) -> tuple[int, int, int]:
    """``K`` of the x, w and b gradients (Note [conv2d gradient error bound])."""
    c_out, _, kh, kw = np.shape(arrays["w"])
    per_channel = int(np.size(dy)) // c_out
    return (c_out // params.get("groups", 1)) * kh * kw, per_channel, per_channel
