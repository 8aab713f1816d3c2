"""Canonical semantics of 2-D max pooling (DESIGN.md §8 "Operators").

This module owns what a ``max_pool2d`` *call* means, independent of any
framework: its case fields (``Params``: the window fields and ``dilation``),
which calls are valid and the resolved windows (``resolve``; the window rules
are ``harness.ops.pooling``'s, see Note [Pooling windows]). The oracle
(``oracle.py``) does not use it.

Note [Max pooling]
------------------
``y[n, c, i, j] = max x[n, c, i·sh − pt + a·dh, j·sw − pl + b·dw]`` over the
taps ``a < kh``, ``b < kw`` inside the input; padding is −∞, so it never wins,
and a window holding padding only is −∞ (PyTorch and MindSpore return −inf
for it, measured with k 2, dilation 3, pad 1 on a 2×2 input). ``dilation``
(default 1) spaces the taps; the effective kernel ``K = d·(k−1)+1`` enters
the window count and ``same`` padding. Framework sources:
PyTorch ``torch.nn.functional.max_pool2d`` (``aten/src/ATen/native/Pool.h``,
``pooling_output_shape`` and ``pool2d_shape_check``: ``pad ≤ k/2`` in torch
2.13, ``K/2`` in current sources, symmetric padding, dilation); TensorFlow ``tf.nn.max_pool2d`` (``SAME``/``VALID`` by
``GetWindowedOutputSizeVerbose``; explicit padding must be smaller than the
window, "Top padding 3 needs to be smaller than the window size 2"; no
dilation, ``tf.nn.pool`` has it for ``VALID`` only; no ``ceil_mode``);
MindSpore ``nn.MaxPool2d`` (``pad_mode`` ``same``/``valid`` via
``ops.MaxPool``; ``padding``, ``dilation`` and ``ceil_mode`` only with
``pad_mode='pad'``, via ``MaxPool3DWithArgmax``, which requires
``pad ≤ k/2``). These limits are framework restrictions, not canonical rules
(adapters report them as ``unsupported`` or let the framework reject).

Error bound. The inputs are rounded to the case dtype before any backend
sees them, and a maximum of representable numbers is one of them: the output
must equal the oracle exactly. ``oracle.magnitude`` is therefore 0 everywhere,
which the comparator reads as "no rounding allowed" (the bound is ``atol``,
0 by default; −∞ must sit where the oracle has it).
"""

from __future__ import annotations

from pydantic import field_validator

from harness.ops import pooling
from harness.ops.pooling import InvalidCall, Pair, PoolParams, Resolved

NAME = "max_pool2d"

__all__ = ["NAME", "Params", "InvalidCall", "Resolved", "resolve", "input_shapes", "footprint", "DERIVED",
           "derived"]


class Params(PoolParams):
    """The operator fields of a max_pool2d case: the window fields and ``dilation``."""

    dilation: Pair = 1

    @field_validator("dilation")
    @classmethod
    def _dilation(cls, v):
        return pooling.pair(v, 1)


def resolve(params: Params) -> Resolved:
    """Validate a call and resolve its windows; raise ``InvalidCall`` if invalid."""
    return pooling.resolve_windows(params, tuple(params.dilation), None)


input_shapes = pooling.input_shapes


def footprint(params: Params, dtype: str = "float64", outputs: int = 1) -> tuple[int, int]:
    """Peak data bytes ``(parent, worker)`` for the memory guard (``pooling.footprint``)."""
    return pooling.footprint(params, dtype, outputs, tuple(params.dilation))


DERIVED = {
    **pooling.DERIVED,
    "dilated": "dilation > 1 on some axis",
}


def derived(params: dict, data: dict) -> dict:
    """The values of ``DERIVED`` for canonical ``params`` (valid or not); ``data`` is unused."""
    dilation = tuple(params.get("dilation", (1, 1)))
    try:
        resolve(Params.model_validate(params))
        valid = True
    except (InvalidCall, ValueError):
        valid = False
    return {**pooling.derived(params, dilation), "valid_call": valid, "dilated": max(dilation) > 1}
