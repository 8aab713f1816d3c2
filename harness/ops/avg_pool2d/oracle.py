"""The avg_pool2d oracle: window sums divided by a count, from the definition.

Definition (Note [Average pooling] in ``semantics.py``, restated so this
module stands alone). Per axis, pad the input by ``(before, after)``; window
``i`` covers padded rows ``i·s .. i·s + k − 1``. Floor mode keeps every window
that ends inside the padded input; ``ceil_mode`` adds one
window after them when they leave the end of the padded input uncovered,
unless it would start in the bottom/right padding. ``same`` pads TensorFlow's way
(``ceil(H/s)`` outputs, the odd pixel at the bottom/right), ``same_lower`` the
same total with the odd pixel at the top/left, ``valid`` not at all. Then::

    out[n, c, i, j] = Σ x over the window's input positions / count(i, j)

where ``count`` is the number of the window's positions inside the input, or,
with ``count_include_pad``, inside the input and its padding (a ceil_mode
window's overhang past the padding is never counted). The padding arithmetic
is re-derived here on purpose, window by window, instead of calling
``harness.ops.avg_pool2d.semantics``: a reference that reuses the code under
test cannot catch that code's bugs. Calls the semantics rejects (no window,
or a window with no input element and no counted padding) are never asked.

Note [Compiled avg_pool2d oracle loops]
---------------------------------------
The NumPy path makes a pass over the input per window row and column, on
one thread: a large window over small planes (b3 of benchmarks/, 7×7 over
14×14) ends 4-5× PyTorch, which reads half the bytes on two cores. In
float64 the window sums come from ``_window_loops`` instead: the
definition's sum written as plain loops (plane, window row, input row,
input column: the sums down a window row's input rows, whole plane rows at
a time, then each window's across its columns), compiled by Numba, over
the window's positions inside the input;
the count and the division stay as below. It is this module's own code
(the conv2d oracles' loops are their own too), checked against plain
Python loops in ``tests/test_oracle_loops.py``. One thread: a pass over the
input takes a millisecond, less than a second thread costs on a busy
machine (it waits for a core a whole time slice).
"""

from __future__ import annotations

import functools
import sys

import numpy as np


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _axis(size, k, s, padding, ceil_mode):
    """(pad_before, pad_after, number of windows) of one axis, the windows counted one by one."""
    if padding == "valid":
        before = after = 0
    elif padding in ("same", "same_lower"):      # the odd pixel at the end; same_lower: at the start
        needed = max(0, (-(-size // s) - 1) * s + k - size)
        before = needed - needed // 2 if padding == "same_lower" else needed // 2
        after = needed - before
    else:
        before, after = padding
    end = size + before + after
    windows = 0
    while windows * s + k <= end:                  # every window that fits
        windows += 1
    start = windows * s
    if ceil_mode and start - s + k < end and start < size + before:
        windows += 1                                # the overhanging one: the last left rows uncovered
    return before, after, windows


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
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    per_axis = (padding, padding) if isinstance(padding, str) else (padding[0:2], padding[2:4])
    ceil_mode = params.get("ceil_mode", False)
    return [(size, k, s) + _axis(size, k, s, pad, ceil_mode)
            for size, k, s, pad in zip((h, w), kernel, stride, per_axis)]


def _counts(size, k, s, before, after, windows, include_pad):
    """Per window of one axis: how many of its positions are counted."""
    rows = np.arange(windows)[:, None] * s - before + np.arange(k)[None, :]     # input coordinates
    low, high = (-before, size + after) if include_pad else (0, size)
    return ((rows >= low) & (rows < high)).sum(axis=1)


def reference(params: dict, arrays: dict, dtype=np.float64) -> np.ndarray:
    """Compute avg_pool2d in ``dtype`` (float64 for the oracle).

    ``params`` are the case's fields; ``arrays["x"]`` is the NCHW input.
    Returns the output in the case's layout.
    """
    x = np.asarray(arrays["x"], dtype=dtype)
    n, c, h, w = x.shape
    (_, kh, sh, top, bottom, oh), (_, kw, sw, left, right, ow) = _plan(params, h, w)
    loops = compiled(_window_loops) if np.dtype(dtype) == np.float64 else None
    if loops is not None:
        planes = np.ascontiguousarray(x).reshape(n * c, h, w)
        total = np.empty((n * c, oh, ow))
        loops(planes, kh, kw, sh, sw, top, left, total)
        total = total.reshape(n, c, oh, ow)
    else:
        # A window is rows × columns and the padding adds nothing, so its sum is the sum over its rows of
        # the sums over its columns: sum down the rows first, then across the columns.
        total = _along(x, 2, kh, sh, 1, top, oh, np.add, 0)
        total = _along(total, 3, kw, sw, 1, left, ow, np.add, 0)
    include = params.get("count_include_pad", False)
    count = np.outer(_counts(h, kh, sh, top, bottom, oh, include), _counts(w, kw, sw, left, right, ow, include))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count.astype(dtype)
    if params.get("layout", "NCHW") == "NHWC":
        out = out.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(out)


def _window_loops(planes, kh, kw, sh, sw, top, left, total):
    """``total[p, i, j] = Σ planes[p, row, col]`` over the window's rows ``i·sh − top + a`` (a < kh) and columns
    ``j·sw − left + b`` (b < kw) inside the plane: down the window's rows first, a whole plane row at a time
    (contiguous additions, vectorised), then across each window's columns."""
    n, h, w = planes.shape
    _, oh, ow = total.shape
    down = np.empty(w)
    for p in range(n):
        for i in range(oh):
            down[:] = 0.0
            for row in range(max(0, i * sh - top), min(h, i * sh - top + kh)):
                source = planes[p, row]
                for col in range(w):
                    down[col] += source[col]
            for j in range(ow):
                window = 0.0
                for col in range(max(0, j * sw - left), min(w, j * sw - left + kw)):
                    window += down[col]
                total[p, i, j] = window


@functools.cache
def compiled(loops):
    """``loops`` compiled by Numba, once (imported here, on first use: it takes a tenth of a second to import);
    None without Numba."""
    try:
        from numba import njit
    except ImportError:
        return None
    # Numba's cache names the module and imports it to load an entry: one loaded from its file under another
    # name (a script) would write entries no later process can load (ModuleNotFoundError: '<dynamic>').
    return njit(cache=sys.modules.get(loops.__module__) is not None)(loops)


def warm() -> None:
    """Compile (or load from Numba's on-disk cache) the compiled loops: a tiny call."""
    if compiled(_window_loops) is not None:
        reference({"kernel_size": 2}, {"x": np.ones((1, 1, 2, 2))})


def magnitude(params: dict, arrays: dict) -> np.ndarray:
    """``B`` of the tolerance model: the average of ``|x|`` over each window with the same divisor."""
    return reference(params, {"x": np.abs(np.asarray(arrays["x"], dtype=np.float64))})
