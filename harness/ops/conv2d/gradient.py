"""The conv2d gradient oracle: vector–Jacobian products in float64, from the definition.

Note [Convolution gradients]
----------------------------
The forward definition (Note [conv2d semantics]), with ``xp`` the input
zero-padded by ``(top, left)`` (padding contributes no term)::

    y[n, g·Cog + o, p, q] = Σ_{c,i,j} xp[n, g·Cig + c, p·sh + i·dh, q·sw + j·dw] · w[g·Cog + o, c, i, j] + bias

is linear in ``x``, ``w`` and ``bias``. For a cotangent ``dy`` (in the
output's layout), term by term::

    dxp[n, g·Cig + c, p·sh + i·dh, q·sw + j·dw] += dy[n, g·Cog + o, p, q] · w[g·Cog + o, c, i, j]
    dx = dxp[top : top + H, left : left + W]            (what lands on padding is dropped)
    dw[g·Cog + o, c, i, j] = Σ_{n,p,q} dy[n, g·Cog + o, p, q] · xp[n, g·Cig + c, p·sh + i·dh, q·sw + j·dw]
    db[o'] = Σ_{n,p,q} dy[n, o', p, q]

``dx`` is the transposed convolution of ``dy`` (a scatter per tap, the
opposite direction of the forward oracle's gather); ``dw`` a correlation of
the padded input with ``dy``. Nothing is shared with the forward oracle; the
padding arithmetic (TensorFlow's SAME/VALID rule, ONNX's SAME_LOWER) is
re-derived. ``x``/``dx`` are canonical NCHW, ``w``/``dw`` canonical
``(C_out, C_in/groups, kh, kw)``, ``dy`` in the case's layout.
"""

from __future__ import annotations

import numpy as np


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _pad(size, k, s, d, padding):
    """(pad_before, H_out) of one axis."""
    span = d * (k - 1) + 1
    if padding in ("same", "same_lower"):        # out = ceil(H/s); the odd pad after (same_lower: before)
        out = -(-size // s)
        total = max(0, (out - 1) * s + span - size)
        return (total - total // 2 if padding == "same_lower" else total // 2), out
    before, after = (0, 0) if padding == "valid" else padding
    return before, (size + before + after - span) // s + 1


def vjp(params: dict, arrays: dict, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The float64 gradients of ``<dy, conv2d(x, w, b)>``: ``x``, ``w`` and, with a bias, ``b``."""
    x = np.asarray(arrays["x"], dtype=np.float64)
    w = np.asarray(arrays["w"], dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    if params.get("layout", "NCHW") == "NHWC":
        dy = dy.transpose(0, 3, 1, 2)
    n, c_in, h, wd = x.shape
    c_out, cig, kh, kw = w.shape
    groups = params.get("groups", 1)
    cog = c_out // groups
    (sh, sw), (dh, dw_) = _two(params.get("stride", 1)), _two(params.get("dilation", 1))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    pads = (padding, padding) if isinstance(padding, str) else (padding[0:2], padding[2:4])
    top, out_h = _pad(h, kh, sh, dh, pads[0])
    left, out_w = _pad(wd, kw, sw, dw_, pads[1])
    assert dy.shape == (n, c_out, out_h, out_w), (dy.shape, (n, c_out, out_h, out_w))

    rows = max(top + h, (out_h - 1) * sh + dh * (kh - 1) + 1)
    cols = max(left + wd, (out_w - 1) * sw + dw_ * (kw - 1) + 1)
    xp = np.zeros((n, groups, cig, rows, cols))
    xp[..., top:top + h, left:left + wd] = x.reshape(n, groups, cig, h, wd)
    dxp = np.zeros_like(xp)
    dyg = dy.reshape(n, groups, cog, out_h, out_w)
    wg = w.reshape(groups, cog, cig, kh, kw)
    dw = np.zeros_like(wg)
    for i in range(kh):
        for j in range(kw):
            at = (Ellipsis, slice(i * dh, i * dh + (out_h - 1) * sh + 1, sh),
                  slice(j * dw_, j * dw_ + (out_w - 1) * sw + 1, sw))
            dxp[at] += np.einsum("ngopq,goc->ngcpq", dyg, wg[:, :, :, i, j])
            dw[:, :, :, i, j] = np.einsum("ngopq,ngcpq->goc", dyg, xp[at])
    grads = {"x": dxp[..., top:top + h, left:left + wd].reshape(x.shape), "w": dw.reshape(w.shape)}
    if arrays.get("b") is not None:
        grads["b"] = dy.sum(axis=(0, 2, 3))
    return grads
