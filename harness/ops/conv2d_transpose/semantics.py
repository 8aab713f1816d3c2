"""Canonical semantics of 2-D transposed convolution (DESIGN.md §2).

This module owns what a conv2d_transpose *call* means, independent of any
framework: the case parameters (``Params``), which calls are valid, and how
every padding form resolves to per-side crops and an output size
(``resolve``). Adapters use ``resolve`` only where their API lacks a concept
and they must emulate it; the oracle does not use it at all.

Note [Padding forms]
--------------------
Let ``K = d·(k−1)+1`` and ``F = (H−1)·s + K`` (the "full" output). Every form
becomes crops ``(pt, pb)`` and ``H_out``; the output is ``full[pt : pt+H_out]``
where rows at index ≥ F are zeros:

* explicit ``[top, bottom, left, right]`` or an int: ``H_out = F − pt − pb + op``,
  with ``0 ≤ op < max(s, d)`` (PyTorch's rule, ``ConvUtils.h``
  ``check_output_padding``: "output padding must be smaller than either stride
  or dilation").
* explicit padding with ``output_shape``: ``op = H_out − (F − pt − pb)`` must
  satisfy the same rule.
* ``same``/``valid`` follow TensorFlow's ``conv_grad_shape_utils.cc``
  (``ConvBackpropComputeDimensionsV2`` → ``GetWindowedOutputSizeVerbose``): the
  transposed call is the gradient of a forward conv whose *input* is the
  output we produce, so ``output_shape`` is reachable iff the forward conv of
  ``H_out`` gives ``H``:

  - SAME:  ``ceil(H_out / s) == H``, default ``H_out = H·s``,
    ``pt = max(0, F − H_out) // 2`` (``pad_needed // 2``; the odd pixel goes
    to the bottom, as in ``GetWindowedOutputSizeVerbose``).
  - VALID: ``ceil((H_out − K + 1) / s) == H``, default ``H_out = F``,
    ``pt = pb = 0`` (rows past F are zeros).

  Under this rule (``size_rule: tensorflow``, the default) ``output_padding``
  does not combine with ``same``/``valid``: TensorFlow has no such parameter
  and PyTorch has no such padding; ``output_shape`` says it.
* ``size_rule: keras``: ``same``/``valid`` with ``output_padding`` *given*
  (0 included), as Keras 3's ``Conv2DTranspose(padding=..., output_padding=...)``
  sizes them: ``keras/src/backend/common/backend_utils.py``
  ``_get_output_shape_given_tf_padding`` (the ``deconv_output_length`` of
  Keras 2), with ``K`` the dilated kernel:

  - valid: ``H_out = F + op`` (no crops; the ``op`` rows past F are zeros);
  - same:  ``H_out = (H−1)·s + (K mod 2) + op``.

  The crops are then TensorFlow's for that size, exactly as if it were the
  ``output_shape`` (Keras' TensorFlow backend, ``backend/tensorflow/nn.py``
  ``conv_transpose``, computes the size and calls ``tf.nn.conv_transpose``
  with ``padding='SAME'|'VALID'`` and that ``output_shape``; its JAX backend,
  ``_convert_conv_transpose_padding_args_from_keras_to_jax``, crops
  ``⌊(F − H_out)/2⌋`` on top too; its torch backend crops ``⌈·⌉`` on top and
  warns about the inconsistency). Valid iff ``op < s`` (Keras'
  ``BaseConvTranspose`` rejects ``output_padding ≥ strides``) and the size is
  reachable by the rule above (``same`` with an even ``K`` and ``op = 0``
  gives ``(H−1)·s``, which SAME cannot produce: Keras on TensorFlow fails).
  Keras' default ``output_padding=None`` is the TensorFlow rule's ``same``
  (``H·s``) and, for ``valid``, ``F`` where ``K ≥ s`` but ``H·s`` where
  ``K < s`` (``(H−1)·s + max(K, s)``): there canonical ``valid`` is Keras'
  ``output_padding=0``. ``size_rule: keras`` takes ``same``/``valid`` only,
  and no ``output_shape`` (Keras has none).
* ``same_lower`` is ``same`` with the odd crop at the top/left:
  ``pt = needed − needed // 2`` (same sizes, same reachable ``output_shape``).
  It follows ONNX ``ConvTranspose`` ``auto_pad='SAME_LOWER'`` (``onnx/defs/nn/defs.cc``:
  "In case the padding is an odd number, the extra padding is added at the end
  for SAME_UPPER and at the beginning for SAME_LOWER"; with ``output_shape``:
  ``pads[start] = total − total/2``), which ONNX Runtime 1.31/1.32 implement
  (measured). ONNX ``SAME_UPPER`` is canonical ``same``: ``H_out = H·s``, the odd
  crop at the end. (ONNX's own shape inference and ONNX Runtime give ``F``
  instead of ``H·s`` when ``F < H·s``; that is a divergence, docs/findings.md.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harness.ops.fields import LIMIT, ConvResolved, Padding, Pair, input_dims, nchw, padding_form, pair, split_total
from harness.ops.spec import InvalidCall

NAME = "conv2d_transpose"

class Params(BaseModel):
    """The operator fields of a conv2d_transpose case (DESIGN.md §4)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    input: list[int] = Field(min_length=4, max_length=4, description="N, C, H, W in `layout` order")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    out_channels: int = Field(ge=1, le=LIMIT)
    kernel_size: Pair
    stride: Pair = 1
    padding: Padding = 0
    output_padding: Pair = 0
    dilation: Pair = 1
    groups: int = Field(default=1, ge=1, le=LIMIT)
    bias: bool = False
    output_shape: Optional[list[int]] = Field(default=None, min_length=2, max_length=2)
    size_rule: Literal["tensorflow", "keras"] = Field(
        default="tensorflow", description="how 'same'/'valid' size the output with output_padding (Note "
                                          "[Padding forms])")

    @field_validator("input")
    @classmethod
    def _input(cls, v):
        return input_dims(v)

    @field_validator("kernel_size", "stride", "dilation")
    @classmethod
    def _positive_pair(cls, v):
        return pair(v, 1)

    @field_validator("output_padding")
    @classmethod
    def _non_negative_pair(cls, v):
        return pair(v, 0)

    @field_validator("padding")
    @classmethod
    def _padding(cls, v):
        return padding_form(v)

    @field_validator("output_shape")
    @classmethod
    def _output_shape(cls, v):
        if v is not None and min(v) < 1:
            raise ValueError(f"output_shape must be positive, got {v}")
        return v

    @field_validator("size_rule")
    @classmethod
    def _size_rule(cls, v, info: ValidationInfo):
        if v == "keras" and info.data.get("padding", "same") not in ("same", "valid"):
            raise ValueError("size_rule 'keras' sizes padding 'same'/'valid' only (Keras' two modes)")
        if v == "keras" and info.data.get("output_shape") is not None:
            raise ValueError("size_rule 'keras' has no output_shape (Keras has none): give output_padding")
        return v


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
    crops: tuple[int, int, int, int]       # top, bottom, left, right
    output_padding: tuple[int, int]        # rows/cols kept past F − crop
    full_hw: tuple[int, int]               # F
    out_hw: tuple[int, int]                # H_out, W_out
    layout: str
    bias: bool


def input_shapes(params: Params) -> dict[str, tuple[int, ...]]:
    """Canonical (NCHW, ``(C_in, C_out/groups, kh, kw)``) shapes of the operands."""
    n, c, h, w = nchw(params)
    shapes = {"x": (n, c, h, w),
              "w": (c, params.out_channels // max(params.groups, 1), *params.kernel_size)}
    if params.bias:
        shapes["b"] = (params.out_channels,)
    return shapes


def keras_size(size, k, s, d, form, op) -> int:
    """``size_rule: keras``: the output size Keras gives ``same``/``valid`` with ``output_padding`` (Note
    [Padding forms])."""
    eff = d * (k - 1) + 1
    return (size - 1) * s + eff + op if form == "valid" else (size - 1) * s + eff % 2 + op


def axis_sizes(size, k, s, d, form, pads, op, out, rule="tensorflow") -> tuple[int, int, int, int]:
    """One spatial axis without any check: (crop_lo, crop_hi, op, out), ``out`` as asked or by default."""
    full = (size - 1) * s + d * (k - 1) + 1
    if rule == "keras" and form != "explicit":
        out = keras_size(size, k, s, d, form, op)
    if form == "explicit":
        lo, hi = pads
        return (lo, hi, op, full - lo - hi + op) if out is None else (lo, hi, out - (full - lo - hi), out)
    if form in ("same", "same_lower"):
        out = size * s if out is None else out
        needed = max(0, full - out)
        return (*split_total(needed, form), out - (full - needed), out)
    out = full if out is None else out   # valid
    return 0, 0, out - full, out


def _axis(size, k, s, d, form, pads, op, out, axis, rule="tensorflow"):
    """Resolve one spatial axis; returns (crop_lo, crop_hi, op, out) or raises ``InvalidCall``."""
    eff = d * (k - 1) + 1
    full = (size - 1) * s + eff
    limit = max(s, d)
    lo, hi, op_, out_ = axis_sizes(size, k, s, d, form, pads, op, out, rule)
    if rule == "keras" and form != "explicit":
        if op >= s:
            raise InvalidCall("output_padding", f"output_padding {op} along {axis} must be smaller than the stride "
                              f"{s} (size_rule 'keras': Keras' BaseConvTranspose rule)")
        if form == "same" and -(-out_ // s) != size:
            raise InvalidCall("output_padding", f"output_padding {op} along {axis} gives {out_} with padding 'same' "
                              f"(size_rule 'keras': (H−1)·s + K mod 2 + op), which 'same' cannot reach: need "
                              f"ceil(out / {s}) == {size}")
    elif form == "explicit":
        if out is None and op >= limit:
            raise InvalidCall("output_padding", f"output_padding {op} along {axis} must be smaller than "
                              f"max(stride, dilation) = {limit}")
        if out is not None and not 0 <= op_ < limit:
            raise InvalidCall("output_shape", f"output_shape {out} along {axis} is not reachable with padding "
                              f"{lo}+{hi}: reachable sizes are {full - lo - hi}..{full - lo - hi + limit - 1}")
        if out_ < 1:
            raise InvalidCall("padding", f"output size along {axis} would be {out_}: padding {lo}+{hi} removes the "
                              f"whole full output of {full}")
    elif form in ("same", "same_lower") and out is not None and -(-out // s) != size:
        raise InvalidCall("output_shape", f"output_shape {out} along {axis} is not reachable with padding '{form}': "
                          f"need ceil(out / {s}) == {size}, i.e. {(size - 1) * s + 1}..{size * s}")
    elif form == "valid" and out is not None and (out < eff or -(-(out - eff + 1) // s) != size):
        raise InvalidCall("output_shape", f"output_shape {out} along {axis} is not reachable with padding 'valid': "
                          f"reachable sizes are {full}..{full + s - 1}")
    return lo, hi, op_, out_


def call_defects(params: Params) -> list[InvalidCall]:
    """Every rule about the call as a whole that it breaks (not per axis), in the order ``resolve`` checks."""
    _, c_in, _, _ = nchw(params)
    g, op = params.groups, params.output_padding
    found = []
    if c_in % g:
        found.append(InvalidCall("groups", f"input channels {c_in} are not divisible by groups {g}"))
    if params.out_channels % g:
        found.append(InvalidCall("groups", f"out_channels {params.out_channels} are not divisible by groups {g}"))
    if isinstance(params.padding, str) and any(op) and params.size_rule == "tensorflow":
        found.append(InvalidCall("output_padding", f"output_padding does not combine with padding "
                                                   f"'{params.padding}'; give output_shape instead"))
    if params.output_shape is not None and any(op):
        found.append(InvalidCall("output_shape", "give output_padding or output_shape, not both"))
    return found


def axis_args(params: Params) -> list[tuple]:
    """``_axis`` arguments for height and width."""
    _, _, h, w = nchw(params)
    if isinstance(params.padding, str):
        form, pads = params.padding, ((0, 0), (0, 0))
    else:
        t, b, l, r = params.padding
        form, pads = "explicit", ((t, b), (l, r))
    out = params.output_shape or (None, None)
    return [(size, k, s, d, form, pad, op, o, axis, params.size_rule) for size, k, s, d, pad, op, o, axis in zip(
        (h, w), params.kernel_size, params.stride, params.dilation, pads, params.output_padding, out,
        ("height", "width"))]


def axis_defect(args: tuple) -> Optional[str]:
    """The field the rule of one axis rejects (``InvalidCall.field``), or None where the axis is fine."""
    try:
        _axis(*args)
    except InvalidCall as exc:
        return exc.field
    return None


def resolve(params: Params) -> Resolved:
    """Validate a call and resolve its padding; raise ``InvalidCall`` if invalid."""
    defects = call_defects(params)
    if defects:
        raise defects[0]
    n, c_in, h, w = nchw(params)
    (top, bottom, oph, oh), (left, right, opw, ow) = [_axis(*args) for args in axis_args(params)]
    (kh, kw), (sh, sw), (dh, dw) = params.kernel_size, params.stride, params.dilation
    g = params.groups
    return Resolved(
        batch=n, in_channels=c_in, out_channels=params.out_channels, in_hw=(h, w),
        kernel=(kh, kw), stride=(sh, sw), dilation=(dh, dw), groups=g,
        crops=(top, bottom, left, right), output_padding=(oph, opw),
        full_hw=((h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1),
        out_hw=(oh, ow), layout=params.layout, bias=params.bias,
    )


def size_asked_twice(params: dict) -> bool:
    """For adapters: ``output_padding`` and ``output_shape`` both given, which the semantics rejects ("not
    both"). A surface with one way to ask for the output size cannot pose such a call: dropping either
    would ask the framework a different, valid question (and report its acceptance as ``missing_error``)."""
    return params.get("output_shape") is not None and any(params.get("output_padding") or (0, 0))


def one_size_request(call, surface: str) -> None:
    """Raise ``Unsupported`` for a rejected call that asks for the output size twice (``size_asked_twice``)."""
    if call.resolved is None and size_asked_twice(call.params):
        from harness.backends.base import Unsupported
        raise Unsupported(f"{surface} takes one request for the output size: a call giving both output_padding "
                          "and output_shape (which the semantics rejects) cannot be posed")


def implied_output_padding(params: dict, x_shape) -> tuple[int, int]:
    """For adapters: the output_padding an ``output_shape`` with explicit padding implies, per axis (unchecked:
    for an unreachable shape it is negative or too large, and the framework judges it).

    ``x_shape`` is the canonical NCHW input shape; ``out − ((size−1)·s + d·(k−1) + 1 − lo − hi)``.
    """
    t, b, l, r = params["padding"]
    out = []
    for size, k, s, d, want, lo, hi in zip(x_shape[2:], params["kernel_size"], params["stride"],
                                           params["dilation"], params["output_shape"], (t, l), (b, r)):
        out.append(want - ((size - 1) * s + d * (k - 1) + 1 - lo - hi))
    return tuple(out)
