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
    """(pad_before, number of windows) of one axis, the windows counted one by one."""
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
    return before, windows


def _reach(size, windows, s, d, before, tap):
    """Windows [lo, hi) whose tap ``tap`` (input index ``i·s + tap·d − before``) is inside [0, size), and
    those input indices."""
    offset = tap * d - before
    lo = max(0, -(-(-offset) // s))                              # first window with i·s + offset ≥ 0
    hi = min(windows, (size - 1 - offset) // s + 1)               # last window with i·s + offset < size, plus 1
    first = lo * s + offset
    return lo, hi, slice(first, first + (hi - lo - 1) * s + 1, s)


def _along(x, axis, k, s, d, before, windows, ufunc, empty):
    """``ufunc``-reduce ``x`` along ``axis`` over each window's taps inside the input (``empty``: no tap)."""
    shape = list(x.shape)
    shape[axis] = windows
    out = np.full(shape, empty, dtype=x.dtype)
    lead = (slice(None),) * axis
    for tap in range(k):
        lo, hi, rows = _reach(x.shape[axis], windows, s, d, before, tap)
        if hi > lo:
            ufunc(out[lead + (slice(lo, hi),)], x[lead + (rows,)], out=out[lead + (slice(lo, hi),)])
    return out


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
    (kh, sh, dh, top, oh), (kw, sw, dw, left, ow) = _plan(params, h, w)
    # A window's taps are rows × columns and padding never wins, so its maximum is the maximum over its
    # rows of the maxima over its columns: down the rows first, then across the columns.
    out = _along(x, 2, kh, sh, dh, top, oh, np.maximum, -np.inf)
    out = _along(out, 3, kw, sw, dw, left, ow, np.maximum, -np.inf)
    if params.get("layout", "NCHW") == "NHWC":
        out = out.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(out)


def magnitude(params: dict, arrays: dict) -> np.ndarray:
    """``B`` of the tolerance model: 0 everywhere, since a maximum is exact (Note [Max pooling])."""
    x = np.asarray(arrays["x"])
    (_, _, _, _, oh), (_, _, _, _, ow) = _plan(params, x.shape[2], x.shape[3])
    shape = (x.shape[0], oh, ow, x.shape[1]) if params.get("layout", "NCHW") == "NHWC" else (*x.shape[:2], oh, ow)
    return np.zeros(shape)
