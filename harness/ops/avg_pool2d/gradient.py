"""The avg_pool2d gradient oracle: each output's cotangent spread evenly over its window, in float64.

Note [Average pooling gradient]
-------------------------------
``y[n, c, p, q] = Σ_{window (p, q) ∩ input} x / count(p, q)`` (Note [Average
pooling]) is linear in ``x``, so, term by term::

    dx[n, c, r, t] = Σ over the windows (p, q) that hold input position (r, t) of dy[n, c, p, q] / count(p, q)

``count`` is the forward's divisor: the window's positions inside the input,
or with ``count_include_pad`` inside the input and its padding (a
``ceil_mode`` window's overhang past the padding never counts); what a
window spreads onto padding is dropped. The window arithmetic of Note
[Pooling windows] (floor windows, the one extra ``ceil_mode`` window unless
it starts in the bottom/right padding, TensorFlow's ``same``, ONNX's
``same_lower``) is re-derived here in closed form, sharing nothing with the
forward oracle. ``x``/``dx`` are canonical NCHW, ``dy`` in the case's layout.
"""

from __future__ import annotations

import numpy as np


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _windows(size, k, s, padding, ceil_mode):
    """(pad_before, pad_after, number of windows) of one axis."""
    if padding == "valid":
        before = after = 0
    elif padding in ("same", "same_lower"):
        total = max(0, (-(-size // s) - 1) * s + k - size)
        before = total - total // 2 if padding == "same_lower" else total // 2
        after = total - before
    else:
        before, after = padding
    extent = size + before + after
    count = (extent - k) // s + 1                       # every window that fits
    if ceil_mode and (count - 1) * s + k < extent and count * s < size + before:
        count += 1          # ceil_mode: one more for the uncovered rows, unless it starts in the after-padding
    return before, after, count


def _divisors(size, k, s, before, after, count, include_pad):
    """Per window of one axis: how many of its positions the average divides by."""
    low, high = (-before, size + after) if include_pad else (0, size)
    starts = np.arange(count) * s - before
    return np.minimum(starts + k, high) - np.maximum(starts, low)


def vjp(params: dict, arrays: dict, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The float64 gradient of ``<dy, avg_pool2d(x)>`` with respect to ``x``."""
    x = np.asarray(arrays["x"], dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    if params.get("layout", "NCHW") == "NHWC":
        dy = dy.transpose(0, 3, 1, 2)
    n, c, h, w = x.shape
    (kh, kw) = _two(params["kernel_size"])
    sh, sw = _two(params.get("stride") or params["kernel_size"])
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    pads = (padding, padding) if isinstance(padding, str) else (padding[0:2], padding[2:4])
    ceil_mode, include = params.get("ceil_mode", False), params.get("count_include_pad", False)
    top, bottom, oh = _windows(h, kh, sh, pads[0], ceil_mode)
    left, right, ow = _windows(w, kw, sw, pads[1], ceil_mode)
    assert dy.shape == (n, c, oh, ow), (dy.shape, (n, c, oh, ow))

    divisor = np.outer(_divisors(h, kh, sh, top, bottom, oh, include), _divisors(w, kw, sw, left, right, ow, include))
    share = dy / divisor
    canvas = np.zeros((n, c, max(top + h, (oh - 1) * sh + kh), max(left + w, (ow - 1) * sw + kw)))
    for a in range(kh):
        for b in range(kw):
            canvas[:, :, a:a + (oh - 1) * sh + 1:sh, b:b + (ow - 1) * sw + 1:sw] += share
    return {"x": canvas[:, :, top:top + h, left:left + w].copy()}
