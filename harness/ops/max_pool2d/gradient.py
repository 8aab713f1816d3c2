"""The max_pool2d gradient oracle: each output's cotangent routed to its window's arg-max, in float64.

Note [Max pooling gradient]
---------------------------
``y[n, c, p, q] = max over taps (a, b) of padded[n, c, p·sh + a·dh, q·sw + b·dw]``
(Note [Max pooling]; padding is −∞, so it is never selected while the
window holds an input element). The gradient of a maximum is the unit
vector of the element that attained it, so::

    dx[n, c, r, t] = Σ over the windows (p, q) whose winner is (r, t) of dy[n, c, p, q]

**Tie rule**: when several taps attain the maximum, the winner is the
*first* in row-major window order (tap ``a`` outer, ``b`` inner, i.e. the
smallest ``a·kw + b``). This is PyTorch's CPU rule (the kernel keeps the
running maximum and replaces it only on ``val > maxval``) and TensorFlow's
CPU ``MaxPoolGrad``; measured on torch 2 and tensorflow-cpu 2 in float64:
a 3×3 window with the maximum 3 at row-major positions 1, 2, 3 and 5 sends
the whole gradient to position 1 in both. A framework that routes ties
elsewhere (the last, or a split) gives a different but equally valid
subgradient; the judge must name it as a tie divergence, not a value error.
A window of padding only (its output −∞, a constant) routes its cotangent
nowhere: its "winner" is a padding position, dropped with the padding.

The window arithmetic of Note [Pooling windows] (dilated span
``d·(k − 1) + 1``, floor windows, the one extra ``ceil_mode`` window unless it
starts in the bottom/right padding, ``same``, ``same_lower``) is re-derived
in closed form, sharing nothing with the forward oracle. ``x``/``dx`` are
canonical NCHW, ``dy`` in the case's layout.
"""

from __future__ import annotations

import numpy as np


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _windows(size, k, s, d, padding, ceil_mode):
    """(pad_before, number of windows, window span) of one axis."""
    span = d * (k - 1) + 1
    if padding == "valid":
        before = after = 0
    elif padding in ("same", "same_lower"):
        total = max(0, (-(-size // s) - 1) * s + span - size)
        before = total - total // 2 if padding == "same_lower" else total // 2
        after = total - before
    else:
        before, after = padding
    extent = size + before + after
    count = (extent - span) // s + 1                       # every window that fits
    if ceil_mode and (count - 1) * s + span < extent and count * s < size + before:
        count += 1          # ceil_mode: one more for the uncovered rows, unless it starts in the after-padding
    return before, count, span


def winner(taps: np.ndarray) -> np.ndarray:
    """The index of the winning tap along axis 0 (taps in row-major window order): the first maximum."""
    return np.argmax(taps, axis=0)          # argmax returns the first occurrence of the maximum


def vjp(params: dict, arrays: dict, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The float64 gradient of ``<dy, max_pool2d(x)>`` with respect to ``x`` (ties: the first maximum)."""
    x = np.asarray(arrays["x"], dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    if params.get("layout", "NCHW") == "NHWC":
        dy = dy.transpose(0, 3, 1, 2)
    n, c, h, w = x.shape
    kh, kw = _two(params["kernel_size"])
    sh, sw = _two(params.get("stride") or params["kernel_size"])
    dh, dw = _two(params.get("dilation", 1))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    pads = (padding, padding) if isinstance(padding, str) else (padding[0:2], padding[2:4])
    ceil_mode = params.get("ceil_mode", False)
    top, oh, span_h = _windows(h, kh, sh, dh, pads[0], ceil_mode)
    left, ow, span_w = _windows(w, kw, sw, dw, pads[1], ceil_mode)
    assert dy.shape == (n, c, oh, ow), (dy.shape, (n, c, oh, ow))

    rows, cols = max(top + h, (oh - 1) * sh + span_h), max(left + w, (ow - 1) * sw + span_w)
    padded = np.full((n, c, rows, cols), -np.inf)
    padded[:, :, top:top + h, left:left + w] = x
    p, q = np.arange(oh)[:, None], np.arange(ow)[None, :]
    taps = np.stack([padded[:, :, p * sh + a * dh, q * sw + b * dw] for a in range(kh) for b in range(kw)])
    best = winner(taps)                                        # (n, c, oh, ow), index a·kw + b
    r, t = p * sh + (best // kw) * dh, q * sw + (best % kw) * dw
    canvas = np.zeros_like(padded)
    nn, cc = np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None]
    np.add.at(canvas, (nn, cc, r, t), dy)                      # several windows may share a winner
    return {"x": canvas[:, :, top:top + h, left:left + w].copy()}
