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

Rejected, with PyTorch's checks (``aten/src/ATen/native/ConvUtils.h``,
``check_shape_forward``) and TensorFlow's: channels not divisible by groups
(input or output side), an effective kernel larger than the padded input
(``H + top + bottom < K``: "Kernel size can't be greater than actual input
size"; TensorFlow: "Computed output size would be negative"), hence any
output size < 1. TensorFlow is laxer at the edge: VALID with
``ceil((H − K + 1) / s) == 0`` (e.g. ``H = K − 1``) returns an empty tensor
instead of an error (measured: tests/test_conv2d_op.py), a divergence for the
suites to record. Padding larger than the kernel is valid (rows of padding
only give the bias). An empty batch is valid and gives an empty output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = "conv2d"

Pair = Union[int, list[int]]
_LIMIT = 1 << 20


class InvalidCall(ValueError):
    """A call the canonical semantics rejects; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _pair(value, minimum: int) -> list[int]:
    if isinstance(value, bool):
        raise ValueError(f"expected an int or a list of 2 ints, got {value!r}")
    values = [value, value] if isinstance(value, int) else list(value)
    if len(values) != 2:
        raise ValueError(f"expected an int or a list of 2 ints, got {len(values)} values")
    for v in values:
        if v < minimum:
            raise ValueError(f"must be ≥ {minimum}, got {v}")
        if v > _LIMIT:
            raise ValueError(f"{v} is absurdly large (limit {_LIMIT})")
    return values


class Params(BaseModel):
    """The operator fields of a conv2d case (DESIGN.md §4, §8)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    input: list[int] = Field(min_length=4, max_length=4, description="N, C, H, W in `layout` order")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    out_channels: int = Field(ge=1, le=_LIMIT)
    kernel_size: Pair
    stride: Pair = 1
    padding: Union[Literal["same", "valid"], int, list[int]] = 0
    dilation: Pair = 1
    groups: int = Field(default=1, ge=1, le=_LIMIT)
    bias: bool = False

    @field_validator("input")
    @classmethod
    def _input(cls, v):
        if v[0] < 0 or min(v[1:]) < 1:
            raise ValueError(f"batch must be ≥ 0 and channels/height/width ≥ 1, got {v}")
        if max(v) > _LIMIT:
            raise ValueError(f"{v} has an absurdly large dimension (limit {_LIMIT})")
        return v

    @field_validator("kernel_size", "stride", "dilation")
    @classmethod
    def _positive_pair(cls, v):
        return _pair(v, 1)

    @field_validator("padding")
    @classmethod
    def _padding(cls, v):
        if isinstance(v, str):
            return v
        values = [v] * 4 if isinstance(v, int) else list(v)
        if len(values) != 4:
            raise ValueError(f"explicit padding is an int or [top, bottom, left, right], got {len(values)} values")
        if min(values) < 0:
            raise ValueError(f"padding must be ≥ 0, got {values}")
        if max(values) > _LIMIT:
            raise ValueError(f"padding {values} is absurdly large (limit {_LIMIT})")
        return values


@dataclass(frozen=True)
class Resolved:
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

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The output shape in the case's layout."""
        n, c, (h, w) = self.batch, self.out_channels, self.out_hw
        return (n, h, w, c) if self.layout == "NHWC" else (n, c, h, w)

    @property
    def accumulation_length(self) -> int:
        """Products summed into one output element at most: C_in/groups·kh·kw."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]

    def as_dict(self) -> dict:
        return asdict(self)


def nchw(params: Params) -> tuple[int, int, int, int]:
    n, a, b, c = params.input
    return (n, c, a, b) if params.layout == "NHWC" else (n, a, b, c)


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
    if form == "same":
        out = -(-size // s)
        needed = max((out - 1) * s + eff - size, 0)
        return needed // 2, needed - needed // 2, out
    lo, hi = (0, 0) if form == "valid" else pads
    padded = size + lo + hi
    return lo, hi, (padded - eff) // s + 1 if padded >= eff else padded - eff


def _form(padding) -> tuple[str, tuple[tuple[int, int], tuple[int, int]]]:
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
    form, pads = _form(params.padding)
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


def footprint(params: Params, dtype: str = "float64", outputs: int = 1) -> tuple[int, int]:
    """Estimated peak data bytes of one case: ``(parent, worker)``, for the memory guard.

    Works on invalid calls too, so an absurd case is refused before anything
    runs. Same meaning as ``conv2d_transpose.footprint``; element counts:
    operands ``O`` (x, w, b; ``X`` of them x), output ``Y``, and the oracle's
    per-tap gather ``S = N·C_in·H_out·W_out`` (the input rows and columns one
    kernel tap reads). One oracle run holds ``T = X + S + 3·Y``: x
    transposed to channels-last, the gather, one tap's product, the output and
    its bias-added, re-ordered copy. The frameworks' own resident memory is
    not included (``harness.memory`` adds it).

    * Parent, float64, the larger of preparing (operands, their ``|x|, |w|,
      |b|`` copies, the oracle output and the second oracle run for the
      magnitude ``B``: ``2·O + Y + T``) and judging (operands, output and
      ``B``; each backend's answer, ``a`` bytes an element: 4 for
      float16/float32 cases, whose outputs come back as float32, else 8; a
      failure's reproducer, about ``2·O + 7·Y``).
    * Worker: the operands it receives (float64) and a framework copy, and the
      oracle's run in the compute precision ``s`` (4 or 8 bytes), which the
      ``numpy`` backend runs and which bounds the frameworks' direct and
      im2col paths: ``16·O + s·T``.
    """
    n, c_in, h, w = nchw(params)
    form, pads = _form(params.padding)
    out_hw = [max(axis_sizes(size, k, s, d, form, p)[2], 0) for size, k, s, d, p in
              zip((h, w), params.kernel_size, params.stride, params.dilation, pads)]
    kh, kw = params.kernel_size
    x = n * c_in * h * w
    operands = x + params.out_channels * (c_in // max(params.groups, 1)) * kh * kw + params.out_channels
    output = n * params.out_channels * out_hw[0] * out_hw[1]
    gather = n * c_in * out_hw[0] * out_hw[1]
    run = x + gather + 3 * output
    answer = 4 if dtype in ("float16", "float32") else 8
    preparing = 8 * (2 * operands + output + run)
    judging = 8 * (operands + 2 * output) + answer * outputs * output + 8 * (2 * operands + 7 * output)
    compute = 8 if dtype == "float64" else 4
    return max(preparing, judging), 16 * operands + compute * run


#: Values the semantics derives from a call, for conditions in the known-divergence
#: registry (harness/divergences.py). Per-axis values are ``[height, width]``.
DERIVED = {
    "valid_call": "the canonical semantics accepts the call",
    "padding_form": "'same', 'valid' or 'explicit'",
    "batch": "N, the number of images",
    "in_size": "[H, W] of the input",
    "effective_kernel": "[K_h, K_w], K = dilation·(kernel − 1) + 1",
    "kernel_below_stride": "K < stride on some axis: some input rows/columns are never read",
    "pads": "[top, bottom, left, right] zeros around the input, every padding form resolved",
    "any_pad": "some pad is > 0",
    "asymmetric_pad": "top ≠ bottom or left ≠ right (SAME with an odd total: the extra one at the bottom/right)",
    "pad_exceeds_half_kernel": "some pad is > (K − 1) / 2 (frameworks that forbid it: PyTorch's pooling, "
                               "MindSpore's explicit pad checks)",
    "padded_size": "[H + top + bottom, W + left + right]",
    "out_size": "[H_out, W_out] (≤ 0 when the kernel is larger than the padded input)",
    "dropped_tail": "[rows, columns] of the padded input past the last window ((padded − K) mod stride)",
    "kernel_exceeds_input": "K > H or K > W (only padding makes such a call valid)",
    "in_channels_per_group": "C_in // groups",
    "out_channels_per_group": "out_channels // groups",
    "depthwise": "groups == C_in (one input channel per group)",
}


def derived(params: dict, data: dict) -> dict:
    """The values of ``DERIVED`` for canonical ``params`` (valid or not); ``data`` (the fills) is unused."""
    n, a, b, c = params["input"]
    c_in, h, w = (c, a, b) if params.get("layout") == "NHWC" else (a, b, c)
    form, pads = _form(params.get("padding", 0))
    ks, ss, ds = (_pair(params.get(key, 1), 1) for key in ("kernel_size", "stride", "dilation"))
    axes = [axis_sizes(size, k, s, d, form, p) for size, k, s, d, p in zip((h, w), ks, ss, ds, pads)]
    eff = [d * (k - 1) + 1 for k, d in zip(ks, ds)]
    resolved_pads = [p for lo, hi, _ in axes for p in (lo, hi)]
    padded = [size + lo + hi for size, (lo, hi, _) in zip((h, w), axes)]
    groups = max(params.get("groups", 1), 1)
    try:
        resolve(Params.model_validate(params))
        valid = True
    except (InvalidCall, ValueError):
        valid = False
    return {
        "valid_call": valid, "padding_form": form, "batch": n, "in_size": [h, w], "effective_kernel": eff,
        "kernel_below_stride": any(e < s for e, s in zip(eff, ss)),
        "pads": resolved_pads, "any_pad": any(resolved_pads),
        "asymmetric_pad": resolved_pads[0] != resolved_pads[1] or resolved_pads[2] != resolved_pads[3],
        "pad_exceeds_half_kernel": any(2 * p > e - 1 for p, e in zip(resolved_pads, (eff[0], eff[0], eff[1], eff[1]))),
        "padded_size": padded, "out_size": [out for *_, out in axes],
        "dropped_tail": [(p - e) % s if p >= e else 0 for p, e, s in zip(padded, eff, ss)],
        "kernel_exceeds_input": any(e > size for e, size in zip(eff, (h, w))),
        "in_channels_per_group": c_in // groups, "out_channels_per_group": params["out_channels"] // groups,
        "depthwise": groups == c_in,
    }
