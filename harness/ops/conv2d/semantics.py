"""Canonical semantics of 2-D convolution (forward; DESIGN.md §8 "Operators").

This module owns what a conv2d *call* means, independent of any framework:
the case parameters (``Params``), which calls are valid, and how every
padding form resolves to per-side zero padding and an output size
(``resolve``). Adapters use ``resolve`` only where their API lacks a concept
and they must emulate it; the oracle does not use it at all.

Note [conv2d semantics]
-----------------------
Operands (canonical, NCHW): ``x (N, C_in, H, W)``, ``w (C_out, C_in/groups,
kh, kw)``, optional ``b (C_out,)``. With ``Cig = C_in/groups`` and ``Cog =
C_out/groups``, output channel ``o`` of group ``g = o // Cog``::

    out[n, o, y, x] = b[o] + Σ_{ci < Cig, i < kh, j < kw}
                      x[n, g·Cig + ci, y·sh + i·dh − top, x·sw + j·dw − left] · w[o, ci, i, j]

a cross-correlation, as in every framework. Terms whose input index falls in
the padding are *absent* (not ``0 · w``): an inf or NaN weight reaches only
outputs whose window meets it over a real input pixel. This is what makes
conv2d the exact adjoint of conv2d_transpose (whose scatter has no padding
terms either); a framework that multiplies its zero padding by an inf weight
shows up as a divergence on non-finite data only.

Let ``K = d·(k−1)+1`` (the effective kernel). Every padding form becomes
``(top, bottom)`` and ``H_out = floor((H + top + bottom − K) / s) + 1``:

* explicit ``[top, bottom, left, right]`` or an int (all four sides).
* ``same`` and ``valid`` follow TensorFlow's ``GetWindowedOutputSizeVerbose``
  (``tensorflow/core/framework/kernel_shape_util.cc``):

  - SAME:  ``H_out = ceil(H / s)``, ``pad_needed = max((H_out − 1)·s + K − H, 0)``,
    ``top = pad_needed // 2``, ``bottom = pad_needed − top``: an odd total puts the
    extra row at the bottom (column at the right). For stride 1 this is
    PyTorch's ``padding='same'`` (``total = d·(k−1)``, left ``total // 2``;
    PyTorch refuses ``'same'`` with a stride > 1).
  - VALID: ``H_out = ceil((H − K + 1) / s)``, no padding.
  - ``same_lower``: SAME's ``H_out`` and total, the extra row/column at the
    top/left (``top = pad_needed − pad_needed // 2``). It follows ONNX ``Conv``
    ``auto_pad='SAME_LOWER'`` (``onnx/defs/nn/defs.cc``, ``convPoolShapeInference``:
    ``pads[i] = half_pad_big`` for SAME_LOWER, ``half_pad_small`` for
    SAME_UPPER, with the total of ``ceil(H/s)`` outputs); ONNX ``SAME_UPPER`` is
    canonical ``same`` exactly (the same total, the odd one at the end).

Rejected, with PyTorch's checks (``aten/src/ATen/native/ConvUtils.h``,
``check_shape_forward``) and TensorFlow's: channels not divisible by groups
(input or output side), an effective kernel larger than the padded input
(``H + top + bottom < K``: "Kernel size can't be greater than actual input
size"; TensorFlow: "Computed output size would be negative"), hence any
output size < 1. TensorFlow and MindSpore are laxer at the edge, both
registered divergences (docs/findings.md): TensorFlow accepts any window whose
truncated size ``trunc((padded − K + s) / s)`` is 0 (F6), MindSpore checks the
kernel without its dilation (F7). Padding larger than the kernel is valid (rows of padding
only give the bias). An empty batch is valid and gives an empty output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.ops.fields import LIMIT, ConvResolved, Padding, Pair, input_dims, nchw, padding_form, pair, split_total
from harness.ops.spec import InvalidCall

NAME = "conv2d"

class Params(BaseModel):
    """The operator fields of a conv2d case (DESIGN.md §4, §8)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    input: list[int] = Field(min_length=4, max_length=4, description="N, C, H, W in `layout` order")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    out_channels: int = Field(ge=1, le=LIMIT)
    kernel_size: Pair
    stride: Pair = 1
    padding: Padding = 0
    dilation: Pair = 1
    groups: int = Field(default=1, ge=1, le=LIMIT)
    bias: bool = False

    @field_validator("input")
    @classmethod
    def _input(cls, v):
        return input_dims(v)

    @field_validator("kernel_size", "stride", "dilation")
    @classmethod
    def _positive_pair(cls, v):
        return pair(v, 1)

    @field_validator("padding")
    @classmethod
    def _padding(cls, v):
        return padding_form(v)


@dataclass(frozen=True)
class Resolved(ConvResolved):
    """A valid call, every padding form resolved (all sizes per axis: (h, w))."""

    batch: int
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    pads: tuple[int, int, int, int]        # top, bottom, left, right (zeros around the input)
    out_hw: tuple[int, int]                # H_out, W_out
    layout: str
    bias: bool


def input_shapes(params: Params) -> dict[str, tuple[int, ...]]:
    """Canonical (NCHW, ``(C_out, C_in/groups, kh, kw)``) shapes of the operands."""
    n, c, h, w = nchw(params)
    shapes = {"x": (n, c, h, w), "w": (params.out_channels, c // max(params.groups, 1), *params.kernel_size)}
    if params.bias:
        shapes["b"] = (params.out_channels,)
    return shapes


def axis_sizes(size: int, k: int, s: int, d: int, form: str, pads: tuple[int, int]) -> tuple[int, int, int]:
    """One spatial axis without any check: ``(pad_before, pad_after, out)``; ``out`` ≤ 0 when invalid."""
    eff = d * (k - 1) + 1
    if form in ("same", "same_lower"):
        out = -(-size // s)
        return (*split_total(max((out - 1) * s + eff - size, 0), form), out)
    lo, hi = (0, 0) if form == "valid" else pads
    padded = size + lo + hi
    return lo, hi, (padded - eff) // s + 1 if padded >= eff else padded - eff


def split_padding(padding) -> tuple[str, tuple[tuple[int, int], tuple[int, int]]]:
    if isinstance(padding, str):
        return padding, ((0, 0), (0, 0))
    if isinstance(padding, int):
        padding = [padding] * 4
    t, b, l, r = padding
    return "explicit", ((t, b), (l, r))


def resolve(params: Params) -> Resolved:
    """Validate a call and resolve its padding; raise ``InvalidCall`` if invalid."""
    n, c_in, h, w = nchw(params)
    g = params.groups
    if c_in % g:
        raise InvalidCall("groups", f"input channels {c_in} are not divisible by groups {g}")
    if params.out_channels % g:
        raise InvalidCall("groups", f"out_channels {params.out_channels} are not divisible by groups {g}")
    form, pads = split_padding(params.padding)
    sizes = []
    for axis, size, k, s, d, p in zip(("height", "width"), (h, w), params.kernel_size, params.stride,
                                      params.dilation, pads):
        lo, hi, out = axis_sizes(size, k, s, d, form, p)
        eff = d * (k - 1) + 1
        if size + lo + hi < eff:
            field = "kernel_size" if form == "valid" or (lo, hi) == (0, 0) else "padding"
            raise InvalidCall(field, f"effective kernel {eff} along {axis} (dilation {d}·(kernel {k} − 1) + 1) is "
                                     f"larger than the padded input {size} + {lo} + {hi} = {size + lo + hi}")
        sizes.append((lo, hi, out))
    (top, bottom, oh), (left, right, ow) = sizes
    return Resolved(
        batch=n, in_channels=c_in, out_channels=params.out_channels, in_hw=(h, w),
        kernel=tuple(params.kernel_size), stride=tuple(params.stride), dilation=tuple(params.dilation),
        groups=g, pads=(top, bottom, left, right), out_hw=(oh, ow), layout=params.layout, bias=params.bias,
    )
