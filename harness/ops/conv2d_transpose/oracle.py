"""The conv2d_transpose oracle: a scatter-add over kernel taps, from the definition.

Definition (DESIGN.md §2), per group ``g`` and kernel tap ``(i, j)``::

    full[n, g·Cog + o, a·s + i·d, b·s + j·d] += x[n, g·Cig + c, a, b] · w[g·Cig + c, o, i, j]

then ``out = full[pt : pt + H_out, pl : pl + W_out]`` (rows past the full
output are zeros) ``+ bias``. The products of every tap come from one matrix
product over the group's input channels (a block of images, or of one large
image's rows, at a time, so they stay small), then each tap's products are
added at their place: the scatter-add of the definition at BLAS speed. The
only indexing trick, the phase-major canvas, is explained where it is used.

The padding arithmetic below is deliberately re-derived from the case
parameters instead of calling ``harness.ops.conv2d_transpose.resolve``.
"""

from __future__ import annotations

import numpy as np

BLOCK_BYTES = 32 << 20          # products held per block: matrix products large enough for BLAS, bounded memory


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def crops_and_size(size, k, s, d, padding, op, out, keras=False):
    """(crop_before, H_out) for one axis, straight from DESIGN.md §2 (``keras``: Keras' size for 'same'/'valid'
    with output_padding, ``deconv_output_length``; the crops stay TensorFlow's)."""
    full = (size - 1) * s + d * (k - 1) + 1
    if keras and padding == "valid":
        out = full + op
    elif keras and padding == "same":
        out = (size - 1) * s + (d * (k - 1) + 1) % 2 + op
    if padding == "valid":
        return 0, full if out is None else out
    if padding in ("same", "same_lower"):       # the odd crop at the end; same_lower: at the start
        out = size * s if out is None else out
        needed = max(0, full - out)
        return (needed - needed // 2 if padding == "same_lower" else needed // 2), out
    before, after = padding
    return before, full - before - after + op if out is None else out


def reference(params: dict, arrays: dict, dtype=np.float64) -> np.ndarray:
    """Compute conv2d_transpose in ``dtype`` (float64 for the oracle).

    ``params`` are the case's fields (as in the case file); ``arrays`` hold the
    canonical NCHW ``x``, ``w`` of shape (C_in, C_out/groups, kh, kw) and an
    optional ``b``. Returns the output in the case's layout.
    """
    x = np.asarray(arrays["x"], dtype=dtype)
    w = np.asarray(arrays["w"], dtype=dtype)
    n, c_in, h, wd = x.shape
    _, cog, kh, kw = w.shape
    groups = params.get("groups", 1)
    cig = c_in // groups
    (sh, sw), (dh, dw) = _two(params.get("stride", 1)), _two(params.get("dilation", 1))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    pad_h = padding if isinstance(padding, str) else padding[0:2]
    pad_w = padding if isinstance(padding, str) else padding[2:4]
    oph, opw = _two(params.get("output_padding", 0))
    out_h, out_w = params.get("output_shape") or (None, None)
    keras = params.get("size_rule") == "keras"
    top, out_h = crops_and_size(h, kh, sh, dh, pad_h, oph, out_h, keras)
    left, out_w = crops_and_size(wd, kw, sw, dw, pad_w, opw, out_w, keras)

    full_h = max((h - 1) * sh + dh * (kh - 1) + 1, top + out_h)
    full_w = max((wd - 1) * sw + dw * (kw - 1) + 1, left + out_w)
    # Channel-major throughout, so each tap's products are whole image rows: x as (g, cig, n, h, w), w as
    # (g, kh·kw·cog, cig), the canvas as (g, cog, n, rows, columns) after its two phase axes. Every product
    # of a block of input rows is one matrix product, (g, kh·kw·cog, cig) @ (g, cig, pixels): each input
    # pixel through every tap.
    xc = np.ascontiguousarray(x.reshape(n, groups, cig, h, wd).transpose(1, 2, 0, 3, 4))
    wc = np.ascontiguousarray(w.reshape(groups, cig, cog, kh, kw).transpose(0, 3, 4, 2, 1)).reshape(groups, -1, cig)
    # The canvas stores rows phase-major: full row Y = q·s + p lives at canvas[p, .., q]. Tap (i, j) writes
    # rows a·s + i·d, i.e. phase (i·d) % s and rows (i·d) // s + a: one dense block per tap instead of
    # a strided scatter. Same sums, about twice as fast.
    canvas = np.zeros((sh, sw, groups, cog, n, -(-full_h // sh), -(-full_w // sw)), dtype=dtype)
    for a, b, r0, r1 in _blocks(n, h, groups * kh * kw * cog * wd * canvas.itemsize):
        pixels = xc[:, :, a:b, r0:r1].reshape(groups, cig, -1)
        products = np.matmul(wc, pixels).reshape(groups, kh, kw, cog, b - a, r1 - r0, wd)
        for i in range(kh):
            for j in range(kw):
                (qi, pi), (qj, pj) = divmod(i * dh, sh), divmod(j * dw, sw)
                canvas[pi, pj, :, :, a:b, qi + r0:qi + r1, qj:qj + wd] += products[:, i, j]
    rows, cols = canvas.shape[5] * sh, canvas.shape[6] * sw
    full = canvas.transpose(4, 2, 3, 5, 0, 6, 1).reshape(n, groups * cog, rows, cols)
    out = full[:, :, top:top + out_h, left:left + out_w]
    if arrays.get("b") is not None:
        out = out + np.asarray(arrays["b"], dtype=dtype)[:, None, None]
    if params.get("layout", "NCHW") == "NHWC":
        out = out.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(out)


def _blocks(n, rows, row_bytes):
    """(a, b, r0, r1): images [a, b), input rows [r0, r1) of each, with about ``BLOCK_BYTES`` of products
    (``row_bytes`` an input row's): whole images while one fits, else the rows of one image a block at a time."""
    per_block = max(1, BLOCK_BYTES // max(row_bytes, 1))
    if per_block >= rows:
        step = per_block // max(rows, 1)
        return [(a, min(n, a + step), 0, rows) for a in range(0, n, step)]
    return [(a, a + 1, r, min(rows, r + per_block)) for a in range(n) for r in range(0, rows, per_block)]
