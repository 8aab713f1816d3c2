"""PROTOTYPE v2 (direct kernel with explicit 512-bit micro-kernel)"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# Pixels per register tile for NB accumulator vectors per pixel (NB*P <= 24 of 32 zmm).
_P_OF_NB = (0, 24, 12, 8, 6)


@intrinsic
def _microkernel(typingctx, tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, P, NB):
    if not (isinstance(P, types.IntegerLiteral) and isinstance(NB, types.IntegerLiteral)):
        return None
    npix, nvec = P.literal_value, NB.literal_value
    dt = tile.dtype
    sig = types.void(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, P, NB)

    def codegen(context, builder, signature, args):
        tile_v, xa_v, xbase_v, xci_v, toffx_v, wa_v, wbase_v, toffw_v, ntaps_v, cig_v, wld_v = args[:11]
        ety = context.get_value_type(dt)
        lanes = 16 if dt == types.float32 else 8
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(ety, lanes)
        i64 = ir.IntType(64)

        def data(aty, av):
            return cgutils.create_struct_proxy(aty)(context, builder, value=av).data

        tp, xp, wp = data(tile, tile_v), data(xa, xa_v), data(wa, wa_v)
        txp, twp = data(toffx, toffx_v), data(toffw, toffw_v)
        zero = ir.Constant(vty, [ir.Constant(ety, 0.0)] * lanes)
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nvec)] for _ in range(npix)]
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty, vty, vty]),
            f"llvm.fma.v{lanes}{'f32' if dt == types.float32 else 'f64'}")
        bmask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
        undef = ir.Constant(vty, ir.Undefined)
        with cgutils.for_range(builder, ntaps_v) as tloop:
            t = tloop.index
            xo = builder.add(xbase_v, builder.load(builder.gep(txp, [t])))
            wo0 = builder.add(wbase_v, builder.load(builder.gep(twp, [t])))
            with cgutils.for_range(builder, cig_v) as cloop:
                ci = cloop.index
                wo = builder.add(wo0, builder.mul(ci, wld_v))
                wv = []
                for b in range(nvec):
                    ptr = builder.gep(wp, [builder.add(wo, ir.Constant(i64, b * lanes))])
                    wv.append(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=align))
                xo_ci = builder.add(xo, builder.mul(ci, xci_v))
                for p in range(npix):
                    s = builder.load(builder.gep(xp, [builder.add(xo_ci, ir.Constant(i64, p))]))
                    bv = builder.shuffle_vector(
                        builder.insert_element(undef, s, ir.Constant(ir.IntType(32), 0)), undef, bmask)
                    for b in range(nvec):
                        builder.store(builder.call(fma, [bv, wv[b], builder.load(accs[p][b])]), accs[p][b])
        for p in range(npix):
            for b in range(nvec):
                ptr = builder.gep(tp, [ir.Constant(i64, (p * nvec + b) * lanes)])
                builder.store(builder.load(accs[p][b]), builder.bitcast(ptr, vty.as_pointer()), align=align)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def _mk(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, nb):
    if nb == 1:
        _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 24, 1)
    elif nb == 2:
        _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 12, 2)
    elif nb == 3:
        _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 8, 3)
    else:
        _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 6, 4)


@njit(parallel=True, cache=True)
def _pack_x(x, xp, pad_t, pad_l):
    nb, cin, h, wd = x.shape
    hp = xp.shape[1]
    for t in prange(nb * hp):
        n = t // hp
        r = t - n * hp
        a = r - pad_t
        blk = xp[n, r]
        if a < 0 or a >= h:
            blk[:, :] = 0
            continue
        for ci in range(cin):
            dst = blk[ci]
            src = x[n, ci, a]
            dst[:pad_l] = 0
            for c in range(wd):
                dst[pad_l + c] = src[c]
            dst[pad_l + wd:] = 0


@njit(cache=True)
def _pack_w(w, wp, groups):
    cin, cog, kh, kw = w.shape
    cig = cin // groups
    wp[:] = 0
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                for ci in range(cig):
                    for o in range(cog):
                        wp[g, i, j, ci, o] = w[g * cig + ci, o, i, j]


@njit(parallel=True, cache=True)
def _kernel(xp, wp, bias, out, nhwc, sh, sw, top, left, fh, fw, pad_t, pad_l, groups, cog, toffx, toffw, ntaps, lanes):
    nbatch, hp, cin, wpad = xp.shape
    _, kh, kw, cig, cogp = wp.shape
    if nhwc:
        hout, wout = out.shape[1], out.shape[2]
    else:
        hout, wout = out.shape[2], out.shape[3]
    cout = groups * cog
    xflat = xp.ravel()
    wflat = wp.ravel()
    nb_main = min(4, (cog + lanes - 1) // lanes)
    wgroup = kh * kw * cig * cogp
    xend = min(wout, fw - left)
    for task in prange(nbatch * hout):
        n = task // hout
        y = task - n * hout
        tile = np.empty(24 * lanes, dtype=out.dtype)
        yy = y + top
        if yy >= fh:
            for x in range(wout):
                for oc in range(cout):
                    if nhwc:
                        out[n, y, x, oc] = bias[oc]
                    else:
                        out[n, oc, y, x] = bias[oc]
            continue
        for x in range(max(0, xend), wout):
            for oc in range(cout):
                if nhwc:
                    out[n, y, x, oc] = bias[oc]
                else:
                    out[n, oc, y, x] = bias[oc]
        py = yy % sh
        yq = yy // sh
        for px in range(sw):
            ph = py * sw + px
            x0 = (px - left) % sw
            if xend <= x0:
                continue
            cnt = (xend - x0 + sw - 1) // sw
            xq_lo = (x0 + left) // sw
            tx = toffx[ph]
            tw = toffw[ph]
            nt = ntaps[ph]
            for g in range(groups):
                ob0 = 0
                while ob0 < cog:
                    nb = min(nb_main, (cog - ob0 + lanes - 1) // lanes)
                    npx = 24 // nb
                    ob = nb * lanes
                    nvalid = min(ob, cog - ob0)
                    start = 0
                    while start < cnt:
                        s = min(start, max(0, cnt - npx))
                        xbase = ((n * hp + yq + pad_t) * cin + g * cig) * wpad + xq_lo + s + pad_l
                        _mk(tile, xflat, xbase, wpad, tx, wflat, g * wgroup + ob0, tw, nt, cig, cogp, nb)
                        for p in range(start - s, min(npx, cnt - s)):
                            x = x0 + (s + p) * sw
                            if nhwc:
                                for o in range(nvalid):
                                    oc = g * cog + ob0 + o
                                    out[n, y, x, oc] = tile[p * ob + o] + bias[oc]
                            else:
                                for o in range(nvalid):
                                    oc = g * cog + ob0 + o
                                    out[n, oc, y, x] = tile[p * ob + o] + bias[oc]
                        start = s + npx
                    ob0 += ob


def conv2d_transpose(x, w, b, *, stride, dilation, groups, crops, out_hw, layout="NCHW", dtype="float32"):
    ct = np.float64 if dtype == "float64" else np.float32
    lanes = 8 if ct == np.float64 else 16
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    nbatch, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    cig = cin // groups
    cout = cog * groups
    hout, wout = out_hw
    top, left = crops[0], crops[2]
    fh = (h - 1) * sh + dh * (kh - 1) + 1
    fw = (wd - 1) * sw + dw * (kw - 1) + 1
    qh = ((kh - 1) * dh) // sh
    qw = ((kw - 1) * dw) // sw
    xp = np.empty((nbatch, h + 2 * qh, cin, wd + 2 * qw + 24), ct)
    _pack_x(x, xp, qh, qw)
    cogp = -(-cog // lanes) * lanes
    wp = np.empty((groups, kh, kw, cig, cogp), ct)
    _pack_w(w, wp, groups)
    # taps of each output phase
    nph = sh * sw
    tmax = kh * kw
    toffx = np.zeros((nph, tmax), np.int64)
    toffw = np.zeros((nph, tmax), np.int64)
    ntaps = np.zeros(nph, np.int64)
    wpad = xp.shape[3]
    for i in range(kh):
        for j in range(kw):
            ph = ((i * dh) % sh) * sw + (j * dw) % sw
            t = ntaps[ph]
            toffx[ph, t] = -((i * dh) // sh) * cin * wpad - (j * dw) // sw
            toffw[ph, t] = (i * kw + j) * cig * cogp
            ntaps[ph] += 1
    bias = np.zeros(cout, ct) if b is None else np.asarray(b, dtype=ct)
    nhwc = layout == "NHWC"
    shape = (nbatch, hout, wout, cout) if nhwc else (nbatch, cout, hout, wout)
    out = np.empty(shape, ct)
    _kernel(xp, wp, bias, out, nhwc, sh, sw, top, left, fh, fw, qh, qw, groups, cog, toffx, toffw, ntaps, lanes)
    return out
