"""The conv2d oracle: a sum over kernel taps of in-bounds products, from the definition.

Definition (Note [conv2d semantics] in ``semantics``), per group ``g`` and tap ``(i, j)``::

    out[n, g·Cog + o, y, x] += x[n, g·Cig + c, y·sh + i·dh − top, x·sw + j·dw − left] · w[g·Cog + o, c, i, j]

for every output pixel whose input pixel lies inside the image (padding
contributes no term), then ``+ bias``. Two transcriptions of that sum, a block
of images (or of one large image's output rows) at a time so that temporaries
stay small:

* ``_by_terms`` adds the terms one by one, vectorised over images, output
  channels and pixels: for each tap and input channel, ``x_tap · w`` on the
  output pixels that tap reaches. Used for a depthwise group (one input
  channel: few terms per output, no matrix product would pay) and for weights
  that are not all finite (``0 · inf`` would turn an absent term into NaN).
* ``_by_matrix_product`` gathers the terms into one matrix per group, a column
  per output pixel and a row per (input channel, tap), with zeros where the
  tap falls outside the image (with finite weights, an absent term and a zero
  term give the same sum), and sums them with one matrix product at BLAS
  speed.

Deliberately independent: the padding arithmetic (TensorFlow's SAME/VALID
rule, DESIGN.md §8) is re-derived here from the case parameters and nothing
is imported from the semantics or the adapters.
"""

from __future__ import annotations

import numpy as np

BLOCK_BYTES = 32 << 20          # temporaries per block: matrix products large enough for BLAS, bounded memory


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
    """Output indices [lo, hi) whose input index ``o·s + tap·d − before`` is inside [0, size), and that
    input index at lo."""
    offset = tap * d - before
    lo = max(0, -(-(-offset) // s))                             # first o with o·s + offset ≥ 0
    hi = min(out, (size - 1 - offset) // s + 1)                  # last o with o·s + offset < size, plus 1
    return lo, hi, lo * s + offset


def _within(lo, hi, first, s, r0, r1):
    """The part [lo', hi') of a tap's output rows [lo, hi) inside a block's rows [r0, r1), and its input rows."""
    lo_, hi_ = max(lo, r0), min(hi, r1)
    start = first + (lo_ - lo) * s
    return lo_ - r0, hi_ - r0, slice(start, start + (hi_ - lo_ - 1) * s + 1, s)


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
    taps = []                     # (i, j, its output rows [y0, y1), the input row at y0, output and input columns)
    for i in range(kh):
        y0, y1, first = _reach(h, out_h, sh, dh, top, i)
        for j in range(kw):
            x0, x1, cols = _within(*_reach(wd, out_w, sw, dw, left, j), sw, 0, out_w)
            if y1 > y0 and x1 > x0:                                   # the tap reaches some pixel
                taps.append((i, j, y0, y1, first, x0, x1, cols))

    # Channel-major throughout, so each tap moves whole image rows: x as (g, cig, n, H, W), w as
    # (g, cog, cig, kh, kw), the output as (g, cog, n, H_out, W_out).
    xc = np.ascontiguousarray(x.reshape(n, groups, cig, h, wd).transpose(1, 2, 0, 3, 4))
    wc = w.reshape(groups, cog, cig, kh, kw)
    out = np.empty((groups, cog, n, out_h, out_w), dtype=dtype)
    if cig == 1 or not np.isfinite(w).all():
        _by_terms(xc, wc, taps, sh, out)
    else:
        _by_matrix_product(xc, wc, taps, sh, out)
    out = out.transpose(2, 0, 1, 3, 4).reshape(n, c_out, out_h, out_w)
    if arrays.get("b") is not None:
        out = out + np.asarray(arrays["b"], dtype=dtype)[:, None, None]
    if params.get("layout", "NCHW") == "NHWC":
        out = out.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(out)


def _blocks(n, rows, row_bytes):
    """(a, b, r0, r1): images [a, b), output rows [r0, r1) of each, with about ``BLOCK_BYTES`` of temporaries
    (``row_bytes`` an output row): whole images while one fits, else the rows of one image a block at a time."""
    per_block = max(1, BLOCK_BYTES // max(row_bytes, 1))
    if per_block >= rows:
        step = per_block // max(rows, 1)
        return [(a, min(n, a + step), 0, rows) for a in range(0, n, step)]
    return [(a, a + 1, r, min(rows, r + per_block)) for a in range(n) for r in range(0, rows, per_block)]


def _by_terms(xc, wc, taps, sh, out):
    """``out[g, o, n, y, x] = Σ over taps (i, j) and channels c of x_tap[g, c, n, y, x] · w[g, o, c, i, j]``,
    each term added on the pixels its tap reaches (``taps``: (i, j, y0, y1, first row, x0, x1, columns))."""
    groups, cog, n, out_h, out_w = out.shape
    for a, b, r0, r1 in _blocks(n, out_h, groups * cog * out_w * out.itemsize):
        block = out[:, :, a:b, r0:r1]
        block[...] = 0
        product = np.empty_like(block)
        for i, j, y0, y1, first, x0, x1, cols in taps:
            y0, y1, rows = _within(y0, y1, first, sh, r0, r1)
            if y1 <= y0:
                continue
            for c in range(xc.shape[1]):
                term = product[:, :, :, y0:y1, x0:x1]
                np.multiply(xc[:, c, None, a:b, rows, cols], wc[:, :, c, i, j, None, None, None], out=term)
                block[:, :, :, y0:y1, x0:x1] += term


def _by_matrix_product(xc, wc, taps, sh, out):
    """The same sum as ``_by_terms``: (g, cog, cig·kh·kw) @ (g, cig·kh·kw, pixels) on the gathered terms."""
    groups, cig, n, _, _ = xc.shape
    _, cog, _, kh, kw = wc.shape
    _, _, _, out_h, out_w = out.shape
    weights = wc.reshape(groups, cog, cig * kh * kw)
    pixels = out.reshape(groups, cog, n * out_h * out_w)               # a view: one column per output pixel
    terms, zeroed = None, None
    for a, b, r0, r1 in _blocks(n, out_h, groups * cig * kh * kw * out_w * out.itemsize):
        if zeroed != (b - a, r0, r1):
            # (g, cig, kh, kw, images, rows, W_out): zero where a tap lies in the padding; blocks of the same
            # rows overwrite the same other entries, so the zeros are written once per kind of block.
            terms, zeroed = np.zeros((groups, cig, kh, kw, b - a, r1 - r0, out_w), dtype=out.dtype), (b - a, r0, r1)
        for i, j, y0, y1, first, x0, x1, cols in taps:
            y0, y1, rows = _within(y0, y1, first, sh, r0, r1)
            if y1 > y0:
                terms[:, :, i, j, :, y0:y1, x0:x1] = xc[:, :, a:b, rows, cols]
        np.matmul(weights, terms.reshape(groups, cig * kh * kw, -1),
                  out=pixels[:, :, (a * out_h + r0) * out_w:((b - 1) * out_h + r1) * out_w])
