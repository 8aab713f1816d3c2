"""The backward pass of the convolutions, which are bilinear in ``(x, w)`` plus a bias: one ``GradientSpec``
builder (Note [conv2d_transpose gradient error bound] and Note [conv2d gradient error bound] give each
operator's ``K``).

Each gradient is one sum of products with non-negative coefficients, rounded once into the case dtype, so
its ``B`` is the operator's gradient oracle on ``|x|``, ``|w|``, ``|dy|``; only the number of terms differs
between operators (``terms``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from harness.ops.spec import ErrorBound, GradientSpec

#: (params, arrays, dy) -> the terms summed into one element of the gradient of x, of w and of b.
Terms = Callable[[dict, dict, np.ndarray], tuple[int, int, int]]


def gradient(vjp: Callable, terms: Terms) -> GradientSpec:
    def magnitude(params: dict, arrays: dict, dy: np.ndarray) -> dict[str, np.ndarray]:
        return vjp(params, {name: np.abs(value) for name, value in arrays.items()}, np.abs(dy))

    def error_bounds(params: dict, arrays: dict, dy: np.ndarray) -> dict[str, ErrorBound]:
        k_x, k_w, k_b = terms(params, arrays, dy)
        bounds = {"x": ErrorBound(k_x, roundings=1), "w": ErrorBound(k_w, roundings=1)}
        if arrays.get("b") is not None:
            bounds["b"] = ErrorBound(k_b, roundings=1)
        return bounds

    return GradientSpec(vjp=vjp, magnitude=magnitude, error_bounds=error_bounds, operands=("x", "w", "b"))
