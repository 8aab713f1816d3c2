"""PROTOTYPE"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_COLS_BYTES = 1 << 20


@njit(parallel=True, cache=True)
def _cast(src, dst):
    a = src.ravel()
    b = dst.ravel()
    n = a.size
    blk = 16384
    for t in prange((n + blk - 1) // blk):
        for k in range(t * blk, min(n, (t + 1) * blk)):
            b[k] = a[k]


@njit(parallel=True, cache=True)
def _load(x, n, a0, a1, xc):
    cin = x.shape[1]
    w = x.shape[3]
    for c in prange(cin):
        for a in range(a0, a1):
            base = (a - a0) * w
            for col in range(w):
                xc[c, base + col] = x[n, c, a, col]


@njit(parallel=True, cache=True)
def _scatter(cols, pb, a0, a1, cog, kh, kw, sh, sw, dh, dw):
    cout = pb.shape[0]
    wd = pb.shape[3] - ((kw - 1) * dw) // sw
    for oc in prange(cout):
        g = oc // cog
        o = oc - g * cog
        for i in range(kh):
            py = (i * dh) % sh
            oy = (i * dh) // sh
            for j in range(kw):
                px = (j * dw) % sw
                ox = (j * dw) // sw
                src = cols[g, (o * kh + i) * kw + j]
                dst = pb[oc, py * sw + px]
                for a in range(a1 - a0):
                    drow = dst[a0 + a + oy]
                    s0 = a * wd
                    for c in range(wd):
                        drow[ox + c] += src[s0 + c]


@njit(parallel=True, cache=True)
def _finalize_nchw(pb, out, n, bias, top, left, sh, sw, fh, fw):
    cout = out.shape[1]
    hout = out.shape[2]
    wout = out.shape[3]
    for oc in prange(cout):
        bv = bias[oc]
        for y in range(hout):
            yy = y + top
            orow = out[n, oc, y]
            if yy >= fh:
                for x in range(wout):
                    orow[x] = bv
                continue
            py = yy % sh
            yq = yy // sh
            for x in range(wout):
                xx = x + left
                if xx >= fw:
                    orow[x] = bv
                else:
                    orow[x] = pb[oc, py * sw + xx % sw, yq, xx // sw] + bv
        pb[oc] = 0


@njit(cache=True)
def _drive(x, wc, bias, out, sh, sw, dh, dw, groups, top, left, rows):
    nb, cin, h, wd = x.shape
    cig = cin // groups
    _, cog, kh, kw = wc.shape
    cout = groups * cog
    m = cog * kh * kw
    fh = (h - 1) * sh + dh * (kh - 1) + 1
    fw = (wd - 1) * sw + dw * (kw - 1) + 1
    hq = h + ((kh - 1) * dh) // sh
    wq = wd + ((kw - 1) * dw) // sw
    pb = np.zeros((cout, sh * sw, hq, wq), dtype=wc.dtype)
    wm = wc.reshape(groups, cig, m)
    xflat = np.empty(cin * rows * wd, dtype=wc.dtype)
    cflat = np.empty(groups * m * rows * wd, dtype=wc.dtype)
    for n in range(nb):
        for a0 in range(0, h, rows):
            a1 = min(h, a0 + rows)
            p = (a1 - a0) * wd
            xc = xflat[: cin * p].reshape(cin, p)
            cols = cflat[: groups * m * p].reshape(groups, m, p)
            _load(x, n, a0, a1, xc)
            for g in range(groups):
                np.dot(wm[g].T, xc[g * cig:(g + 1) * cig], cols[g])
            _scatter(cols, pb, a0, a1, cog, kh, kw, sh, sw, dh, dw)
        _finalize_nchw(pb, out, n, bias, top, left, sh, sw, fh, fw)


def conv2d_transpose(x, w, b, *, stride, dilation, groups, crops, out_hw, layout="NCHW", dtype="float32"):
    ct = np.float64 if dtype == "float64" else np.float32
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    nb, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    cout = cog * groups
    hout, wout = out_hw
    if w.dtype == ct:
        wc = w
    else:
        wc = np.empty(w.shape, ct)
        _cast(w, wc)
    bias = np.zeros(cout, ct) if b is None else np.asarray(b, dtype=ct)
    out = np.empty((nb, cout, hout, wout), ct)
    m = cog * kh * kw
    rows = max(1, min(h, _COLS_BYTES // (np.dtype(ct).itemsize * cout * kh * kw * wd)))
    _drive(x, wc, bias, out, stride[0], stride[1], dilation[0], dilation[1], groups, crops[0], crops[2], rows)
    if layout == "NHWC":
        out = np.ascontiguousarray(out.transpose(0, 2, 3, 1))
    return out
