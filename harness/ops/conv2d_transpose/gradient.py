"""The conv2d_transpose gradient oracle: vector–Jacobian products in float64, from the definition.

Note [Transposed convolution gradients]
---------------------------------------
The forward definition (DESIGN.md §2), per group ``g`` and tap ``(i, j)``::

    full[n, g·Cog + o, a·s + i·d, b·s + j·d] += x[n, g·Cig + c, a, b] · w[g·Cig + c, o, i, j]
    y = full[pt : pt + H_out, pl : pl + W_out] + bias       (rows past ``full`` are zeros)

is linear in ``x``, in ``w`` and in ``bias``. For a cotangent ``dy`` (in the
output's layout), let ``dfull`` be ``dy`` placed back at ``(pt, pl)`` on a
zero canvas the size of ``full`` (what the crop drops gets no gradient).
Differentiating the sum term by term::

    dx[n, g·Cig + c, a, b] = Σ_{o,i,j} dfull[n, g·Cog + o, a·s + i·d, b·s + j·d] · w[g·Cig + c, o, i, j]
    dw[g·Cig + c, o, i, j] = Σ_{n,a,b} x[n, g·Cig + c, a, b] · dfull[n, g·Cog + o, a·s + i·d, b·s + j·d]
    db[o']                 = Σ_{n,y,x} dy[n, o', y, x]

``dx`` is a strided, dilated, grouped correlation of ``dfull`` with ``w`` (an
ordinary conv2d of ``dy``), ``dw`` a correlation of ``x`` with ``dfull``. Both
are computed here by *gathering* the strided tap views of ``dfull``, the
opposite direction of the forward oracle's scatter, and share no code with
it; only the crop arithmetic (DESIGN.md §2, with Keras' ``size_rule``) is
re-derived. ``x`` and ``dx`` are canonical NCHW, ``w``/``dw`` canonical
``(C_in, C_out/groups, kh, kw)``, ``dy`` in the case's layout.
"""

from __future__ import annotations

import numpy as np


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _crop(size, k, s, d, padding, op, out, keras):
    """(crop_before, H_out) of one axis (DESIGN.md §2; ``keras``: Keras' output size for 'same'/'valid')."""
    full = (size - 1) * s + d * (k - 1) + 1
    if out is None and keras and padding == "valid":
        out = full + op
    if out is None and keras and padding == "same":
        out = (size - 1) * s + (d * (k - 1) + 1) % 2 + op
    if padding == "valid":
        return 0, full if out is None else out
    if padding in ("same", "same_lower"):        # TensorFlow: out = H·s; the odd crop after (same_lower: before)
        out = size * s if out is None else out
        total = max(0, full - out)
        return (total - total // 2 if padding == "same_lower" else total // 2), out
    before, after = padding
    return before, (full - before - after + op) if out is None else out


def vjp(params: dict, arrays: dict, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The float64 gradients of ``<dy, conv2d_transpose(x, w, b)>``: ``x``, ``w`` and, with a bias, ``b``."""
    x = np.asarray(arrays["x"], dtype=np.float64)
    w = np.asarray(arrays["w"], dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    if params.get("layout", "NCHW") == "NHWC":
        dy = dy.transpose(0, 3, 1, 2)
    n, c_in, h, wd = x.shape
    _, cog, kh, kw = w.shape
    groups = params.get("groups", 1)
    cig = c_in // groups
    (sh, sw), (dh, dw_) = _two(params.get("stride", 1)), _two(params.get("dilation", 1))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    pads = (padding, padding) if isinstance(padding, str) else (padding[0:2], padding[2:4])
    oph, opw = _two(params.get("output_padding", 0))
    shape = params.get("output_shape") or (None, None)
    keras = params.get("size_rule") == "keras"
    top, out_h = _crop(h, kh, sh, dh, pads[0], oph, shape[0], keras)
    left, out_w = _crop(wd, kw, sw, dw_, pads[1], opw, shape[1], keras)
    assert dy.shape == (n, groups * cog, out_h, out_w), (dy.shape, (n, groups * cog, out_h, out_w))

    rows = max((h - 1) * sh + dh * (kh - 1) + 1, top + out_h)
    cols = max((wd - 1) * sw + dw_ * (kw - 1) + 1, left + out_w)
    dfull = np.zeros((n, groups, cog, rows, cols))
    dfull[:, :, :, top:top + out_h, left:left + out_w] = dy.reshape(n, groups, cog, out_h, out_w)
    xg = x.reshape(n, groups, cig, h, wd)
    wg = w.reshape(groups, cig, cog, kh, kw)
    dx = np.zeros_like(xg)
    dw = np.zeros_like(wg)
    for i in range(kh):
        for j in range(kw):
            view = dfull[..., i * dh:i * dh + (h - 1) * sh + 1:sh, j * dw_:j * dw_ + (wd - 1) * sw + 1:sw]
            dx += np.einsum("ngoab,gco->ngcab", view, wg[:, :, :, i, j])
            dw[:, :, :, i, j] = np.einsum("ngcab,ngoab->gco", xg, view)
    grads = {"x": dx.reshape(x.shape), "w": dw.reshape(w.shape)}
    if arrays.get("b") is not None:
        grads["b"] = dy.sum(axis=(0, 2, 3))
    return grads
