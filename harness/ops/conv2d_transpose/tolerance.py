"""What the tolerance model needs from conv2d_transpose: the magnitude ``B`` and the error-bound parameters.

An output element is a sum of ``K = C_in/groups · kh · kw`` products plus a
bias, rounded into the case dtype after the sum and after the bias (two
roundings). The bound of Note [Tolerance model] (``harness/compare.py``)
scales with ``B = Σ|x·w| + |b|``, which is the operator itself applied to the
absolute operands: ``conv2d_transpose(|x|, |w|) + |b|``, computed by the
float64 oracle.

Note [conv2d_transpose gradient error bound]
--------------------------------------------
Each gradient (Note [Transposed convolution gradients], ``gradient.py``) is
one sum of products, rounded once into the case dtype: ``dx`` sums
``K = C_out/groups · kh · kw`` products ``dy · w``, ``dw`` sums ``N · H · W``
products ``x · dy``, ``db`` sums the ``N · H_out · W_out`` cotangents of its
channel. Each is bilinear with non-negative coefficients, so its ``B`` is the
gradient oracle on ``|x|``, ``|w|``, ``|dy|``. Frameworks compute the
gradients with other kernels (a conv2d of ``dy``, a correlation), so the
accumulation is judged at the case dtype whatever the forward declares.
"""

from __future__ import annotations

import numpy as np

from harness.ops.conv2d_transpose.oracle import reference
from harness.ops.spec import ErrorBound


def magnitude(params: dict, arrays: dict) -> np.ndarray:
    """``B = conv2d_transpose(|x|, |w|) + |b|`` in float64, in the case layout."""
    return reference(params, {name: np.abs(value) for name, value in arrays.items()})


def error_bound(resolved) -> ErrorBound:
    """``K`` products summed (``Resolved.accumulation_length``), then two roundings (sum, bias)."""
    return ErrorBound(accumulation_length=resolved.accumulation_length, roundings=2)


def gradient_terms(params: dict, arrays: dict, dy: np.ndarray) -> tuple[int, int, int]:
    """``K`` of the x, w and b gradients (Note [conv2d_transpose gradient error bound])."""
    n, _, h, w = np.shape(arrays["x"])
    _, cog, kh, kw = np.shape(arrays["w"])
    return cog * kh * kw, n * h * w, int(np.size(dy)) // (cog * params.get("groups", 1))
