"""The conv2d oracle: a sum over kernel taps of in-bounds products, from the definition.

Definition (Note [conv2d semantics] in ``semantics``), per group ``g`` and tap ``(i, j)``::

    out[n, g·Cog + o, y, x] += x[n, g·Cig + c, y·sh + i·dh − top, x·sw + j·dw − left] · w[g·Cog + o, c, i, j]

for every output pixel whose input pixel lies inside the image (padding
contributes no term), then ``+ bias``. Each tap is one matrix product over
the group's input channels on the block of output pixels it reaches, so the
oracle runs at BLAS speed while staying a literal transcription of the sum.

Deliberately independent: the padding arithmetic (TensorFlow's SAME/VALID
rule, DESIGN.md §8) is re-derived here from the case parameters and nothing
is imported from the semantics or the adapters.
"""

from __future__ import annotations

import numpy as np


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def pads_and_size(size, k, s, d, padding):
    """(pad_before, H_out) for one axis: ``padding`` is 'same', 'same_lower', 'valid' or (before, after)."""
    eff = d * (k - 1) + 1
    if padding in ("same", "same_lower"):       # TensorFlow: out = ceil(H/s), odd total to the end;
        out = -(-size // s)                       # same_lower (ONNX SAME_LOWER): to the start
        total = max((out - 1) * s + eff - size, 0)
        return (total - total // 2 if padding == "same_lower" else total // 2), out
    before, after = (0, 0) if padding == "valid" else padding
    return before, (size + before + after - eff) // s + 1


def _reach(size, out, s, d, before, tap):
    """Output indices [lo, hi) whose input index ``o·s + tap·d − before`` is inside [0, size), and that index at lo."""
    offset = tap * d - before
    lo = max(0, -(-(-offset) // s))                             # first o with o·s + offset ≥ 0
    hi = min(out, (size - 1 - offset) // s + 1)                  # last o with o·s + offset < size, plus 1
    return lo, hi, lo * s + offset


def reference(params: dict, arrays: dict, dtype=np.float64) -> np.ndarray:
    """Compute conv2d in ``dtype`` (float64 for the oracle).

    ``params`` are the case's fields (as in the case file); ``arrays`` hold the
    canonical NCHW ``x``, ``w`` of shape (C_out, C_in/groups, kh, kw) and an
    optional ``b``. Returns the output in the case's layout.
    """
    x = np.asarray(arrays["x"], dtype=dtype)
    w = np.asarray(arrays["w"], dtype=dtype)
    n, c_in, h, wd = x.shape
    c_out, cig, kh, kw = w.shape
    groups = params.get("groups", 1)
    cog = c_out // groups
    (sh, sw), (dh, dw) = _two(params.get("stride", 1)), _two(params.get("dilation", 1))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    top, out_h = pads_and_size(h, kh, sh, dh, padding if isinstance(padding, str) else padding[0:2])
    left, out_w = pads_and_size(wd, kw, sw, dw, padding if isinstance(padding, str) else padding[2:4])

    xt = x.reshape(n, groups, cig, h, wd).transpose(1, 0, 3, 4, 2)      # (g, n, H, W, cig)
    wt = w.reshape(groups, cog, cig, kh, kw).transpose(0, 2, 1, 3, 4)   # (g, cig, cog, kh, kw)
    out = np.zeros((groups, n, out_h, out_w, cog), dtype=dtype)
    for i in range(kh):
        y0, y1, a0 = _reach(h, out_h, sh, dh, top, i)
        for j in range(kw):
            x0, x1, c0 = _reach(wd, out_w, sw, dw, left, j)
            if y1 <= y0 or x1 <= x0:
                continue
            rows = slice(a0, a0 + (y1 - y0 - 1) * sh + 1, sh)
            cols = slice(c0, c0 + (x1 - x0 - 1) * sw + 1, sw)
            patch = xt[:, :, rows, cols, :].reshape(groups, -1, cig)     # (g, n·rows·cols, cig)
            tap = np.matmul(patch, wt[:, :, :, i, j])                    # (g, n·rows·cols, cog)
            out[:, :, y0:y1, x0:x1, :] += tap.reshape(groups, n, y1 - y0, x1 - x0, cog)
    out = out.transpose(1, 2, 3, 0, 4).reshape(n, out_h, out_w, c_out)
    if arrays.get("b") is not None:
        out = out + np.asarray(arrays["b"], dtype=dtype)
    if params.get("layout", "NCHW") == "NCHW":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out)
