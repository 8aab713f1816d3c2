"""The max_pool2d oracle: the largest input element under each window's taps, from the definition.

Definition (Note [Max pooling] in ``semantics.py``, restated so this module
stands alone). Per axis, with dilation ``d`` the window spans
``K = d·(k − 1) + 1`` padded rows and samples every ``d``-th; pad the input by
``(before, after)`` with −∞ (padding never wins a maximum; a window of padding
only is −∞); window ``i`` starts at padded row ``i·s``. Floor mode keeps every
window that ends inside the padded input; ``ceil_mode`` adds one
window after them when they leave the end of the padded input uncovered,
unless it would start in the bottom/right padding. ``same`` pads TensorFlow's way
(``ceil(H/s)`` outputs, the odd pixel at the bottom/right), ``same_lower`` the
same total with the odd pixel at the top/left, ``valid`` not at all. Then::

    out[n, c, i, j] = max over a < kh, b < kw of padded[n, c, i·sh + a·dh, j·sw + b·dw]

The padding arithmetic is re-derived here on purpose, window by window,
instead of calling ``harness.ops.max_pool2d.semantics``: a reference that
reuses the code under test cannot catch that code's bugs.
"""

from __future__ import annotations

import numpy as np


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _axis(size, k, s, d, padding, ceil_mode):
    """(pad_before, number of windows, padded extent) of one axis, the windows counted one by one."""
    span = d * (k - 1) + 1
    if padding == "valid":
        before = after = 0
    elif padding in ("same", "same_lower"):      # the odd pixel at the end; same_lower: at the start
        needed = max(0, (-(-size // s) - 1) * s + span - size)
        before = needed - needed // 2 if padding == "same_lower" else needed // 2
        after = needed - before
    else:
        before, after = padding
    end = size + before + after
    windows = 0
    while windows * s + span <= end:                  # every window that fits
        windows += 1
    start = windows * s
    if ceil_mode and start - s + span < end and start < size + before:
        windows += 1                                   # the overhanging one: the last left rows uncovered
    return before, windows, max(end, (windows - 1) * s + span)


def _plan(params: dict, h: int, w: int):
    kernel = _two(params["kernel_size"])
    stride = _two(params.get("stride") or params["kernel_size"])
    dilation = _two(params.get("dilation", 1))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    per_axis = (padding, padding) if isinstance(padding, str) else (padding[0:2], padding[2:4])
    ceil_mode = params.get("ceil_mode", False)
    return [(k, s, d) + _axis(size, k, s, d, pad, ceil_mode)
            for size, k, s, d, pad in zip((h, w), kernel, stride, dilation, per_axis)]


def reference(params: dict, arrays: dict, dtype=np.float64) -> np.ndarray:
    """Compute max_pool2d in ``dtype`` (float64 for the oracle).

    ``params`` are the case's fields; ``arrays["x"]`` is the NCHW input.
    Returns the output in the case's layout.
    """
    x = np.asarray(arrays["x"], dtype=dtype)
    n, c, h, w = x.shape
    (kh, sh, dh, top, oh, rows), (kw, sw, dw, left, ow, cols) = _plan(params, h, w)
    canvas = np.full((n, c, rows, cols), -np.inf, dtype=dtype)
    canvas[:, :, top:top + h, left:left + w] = x
    out = np.full((n, c, oh, ow), -np.inf, dtype=dtype)
    for a in range(kh):
        for b in range(kw):
            tap = canvas[:, :, a * dh:a * dh + (oh - 1) * sh + 1:sh, b * dw:b * dw + (ow - 1) * sw + 1:sw]
            np.maximum(out, tap, out=out)
    if params.get("layout", "NCHW") == "NHWC":
        out = out.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(out)


def magnitude(params: dict, arrays: dict) -> np.ndarray:
    """``B`` of the tolerance model: 0 everywhere, since a maximum is exact (Note [Max pooling])."""
    x = np.asarray(arrays["x"])
    (_, _, _, _, oh, _), (_, _, _, _, ow, _) = _plan(params, x.shape[2], x.shape[3])
    shape = (x.shape[0], oh, ow, x.shape[1]) if params.get("layout", "NCHW") == "NHWC" else (*x.shape[:2], oh, ow)
    return np.zeros(shape)
