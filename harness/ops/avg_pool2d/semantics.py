"""Canonical semantics of 2-D average pooling (DESIGN.md §8 "Operators").

This module owns what an ``avg_pool2d`` *call* means, independent of any
framework: its case fields (``Params``), which calls are valid, the resolved
windows (``resolve``; the window rules are ``harness.ops.pooling``'s, see
Note [Pooling windows]), what an average divides by, and the inputs of its
error bound. The oracle (``oracle.py``) does not use it.

Note [Average pooling]
----------------------
``y[n, c, i, j] = Σ x[n, c, r, q] / count(i, j)``, the sum over the window's
positions inside the input (padding adds nothing: it is never a value).

* ``count_include_pad`` (canonical default **false**, TensorFlow's behaviour).
  false: ``count`` is the number of window positions inside the input.
  true: the number inside the input *and its padding*, ``[−pt, H+pb) ×
  [−pl, W+pr)``: the part of a ``ceil_mode`` window that runs past the
  bottom/right padding is never counted. This is PyTorch's rule
  (``aten/src/ATen/native/cpu/AvgPoolKernel.cpp``, ``cpu_avg_pool``:
  ``pool_size`` is the window clipped to ``input_height + padH``, the divisor
  when ``count_include_pad``; otherwise the window clipped to the input);
  MindSpore's ``AvgPool3D`` (behind ``nn.AvgPool2d`` with ``pad_mode='pad'``)
  gives the same numbers. The rule applies to every padding form, ``same``
  included. TensorFlow's ``tf.nn.avg_pool2d`` has no such parameter and
  excludes SAME padding (``tensorflow/core/kernels/avgpooling_op.cc`` →
  Eigen ``SpatialAvgPooling``, which divides by the in-bounds count), so
  ``count_include_pad: true`` with a window touching padding is
  ``unsupported`` there. MindSpore's ``nn.AvgPool2d(pad_mode='same',
  count_include_pad=True)`` takes the ``ops.AvgPool`` path and excludes the
  padding as well (measured on MindSpore 2.10: 5×5 input, k 2, s 2, the
  corner is 24, not 24/4): a divergence, not a rule. Both PyTorch and
  MindSpore default to ``count_include_pad=True`` and MindSpore's stride to 1,
  so adapters always pass both explicitly.
* The count is separable: ``count(i, j) = count_h(i) · count_w(j)``.
* A window holding no input element (possible only with a pad ≥ kernel) has
  no average when padding is not counted: such a call is rejected. Counted,
  its average is 0. (PyTorch's kernel would write 0 for it, but its
  ``pad ≤ kernel/2`` check keeps it out of reach; that check is a PyTorch
  restriction, not a canonical rule: see Note [Pooling windows].)

Error bound (the inputs of Note [Tolerance model] in ``harness/compare.py``).
An output sums ``m ≤ kh·kw`` input elements in precision ``u_acc`` and
divides by ``count``. Summation in any order errs by at most
``γ_{m−1}·Σ|x|`` (Higham, *Accuracy and Stability of Numerical Algorithms*,
§4.2); the division, or a multiplication by a rounded ``1/count``, adds at
most ``2·u_acc·|y|``; rounding into the case dtype ``u·|y|``. With
``B = Σ|x| / count`` (the average of ``|x|`` with the same divisor: the oracle
run on ``|x|``, ``oracle.magnitude``) and ``|y| ≤ B``::

    |ŷ − y| ≤ u·|y| + u_acc·(m + 1)·B

which the comparator's ``u·(|y| + B) + u_acc·C·√K·B`` covers with
``K = kh·kw`` (``Resolved.accumulation_length``; ``C·√K`` is the
probabilistic form of the ``m`` terms, as for convolutions). The count is an
exact integer in every dtype up to 256 (bfloat16 has 8 significand bits);
beyond that its own rounding is one more ``u_acc·|y| ≤ u_acc·B``, inside the
same term. ``B = 0`` means every summed element is 0, so the output must be
exactly 0.
"""

from __future__ import annotations

from harness.ops import pooling
from harness.ops.pooling import InvalidCall, PoolParams, Resolved, empty_windows

NAME = "avg_pool2d"

__all__ = ["NAME", "Params", "InvalidCall", "Resolved", "resolve", "input_shapes", "footprint", "DERIVED",
           "derived"]


class Params(PoolParams):
    """The operator fields of an avg_pool2d case: the window fields and ``count_include_pad``."""

    count_include_pad: bool = False


def resolve(params: Params) -> Resolved:
    """Validate a call and resolve its windows; raise ``InvalidCall`` if invalid."""
    r = pooling.resolve_windows(params, (1, 1), params.count_include_pad)
    if not params.count_include_pad:
        for axis, size, k, s, lo, out in zip(("height", "width"), r.in_hw, r.kernel, r.stride, r.pads[::2],
                                            r.out_hw):
            empty = empty_windows(size, k, s, 1, lo, out)
            if empty.any():
                raise InvalidCall("padding", f"window {int(empty.argmax())} along {axis} holds padding only, "
                                  f"so its average is undefined without count_include_pad (pads {list(r.pads)}, "
                                  f"kernel {k})")
    return r


input_shapes = pooling.input_shapes


def footprint(params: Params, dtype: str = "float64", outputs: int = 1) -> tuple[int, int]:
    """Peak data bytes ``(parent, worker)`` for the memory guard (``pooling.footprint``)."""
    return pooling.footprint(params, dtype, outputs)


DERIVED = {
    **pooling.DERIVED,
    "count_include_pad_matters": "some window covers padding, so count_include_pad changes a divisor",
}


def derived(params: dict, data: dict) -> dict:
    """The values of ``DERIVED`` for canonical ``params`` (valid or not); ``data`` is unused."""
    values = pooling.derived(params)
    try:
        resolve(Params.model_validate(params))
        valid = True
    except (InvalidCall, ValueError):
        valid = False
    return {**values, "valid_call": valid, "count_include_pad_matters": values["window_touches_padding"]}
