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



_PMAX = (0, 24, 12, 8, 6)      # pixels per tile for NB = 1..4 vectors per pixel (24 accumulators)
_PSMALL = (0, 8, 4, 4, 3)      # a narrower tile for the ragged end of a row


@njit(cache=True)
def _mk(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, nb, small):
    if nb == 1:
        if small:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 8, 1)
        else:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 24, 1)
    elif nb == 2:
        if small:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 4, 2)
        else:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 12, 2)
    elif nb == 3:
        if small:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 4, 3)
        else:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 8, 3)
    else:
        if small:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 3, 4)
        else:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 6, 4)


@njit(parallel=True, cache=True)
def _pack_w(w, wp):
    groups, kh, kw, cig, cogp = wp.shape
    cog = w.shape[1]
    for r in prange(groups * cig):
        g = r // cig
        ci = r - g * cig
        src = w[r]
        for i in range(kh):
            for j in range(kw):
                dst = wp[g, i, j, ci]
                for o in range(cog):
                    dst[o] = src[o, i, j]
                for o in range(cog, cogp):
                    dst[o] = 0


@njit(cache=True)
def _fill_bias(out, nhwc, n, y, x_lo, x_hi, x_step, bias):
    cout = bias.shape[0]
    if x_hi <= x_lo:
        return
    if nhwc:
        for x in range(x_lo, x_hi, x_step):
            row = out[n, y, x]
            for oc in range(cout):
                row[oc] = bias[oc]
    else:
        for oc in range(cout):
            row = out[n, oc, y]
            bv = bias[oc]
            for x in range(x_lo, x_hi, x_step):
                row[x] = bv


@njit(parallel=True, cache=True)
def _kernel(x, wp, bias, out, nhwc, sh, sw, dh, dw, top, left, lanes, nchunks):
    nbatch, cin, h, wd = x.shape
    groups, kh, kw, cig, cogp = wp.shape
    cout = bias.shape[0]
    cog = cout // groups
    if nhwc:
        hout, wout = out.shape[1], out.shape[2]
    else:
        hout, wout = out.shape[2], out.shape[3]
    fh = (h - 1) * sh + dh * (kh - 1) + 1
    fw = (wd - 1) * sw + dw * (kw - 1) + 1
    qh = ((kh - 1) * dh) // sh
    qw = ((kw - 1) * dw) // sw
    ring = qh + 1
    wpad = 2 * qw + wd + 24
    xend = min(wout, fw - left)
    nb_main = min(4, (cog + lanes - 1) // lanes)
    wgroup = kh * kw * cig * cogp
    wflat = wp.ravel()
    total = nbatch * hout
    for ch in prange(nchunks):
        lo = ch * total // nchunks
        hi = (ch + 1) * total // nchunks
        buf = np.empty(ring * cin * wpad, dtype=out.dtype)
        tile = np.empty(24 * lanes, dtype=out.dtype)
        tx = np.empty(kh * kw, dtype=np.int64)
        tw = np.empty(kh * kw, dtype=np.int64)
        ti = np.empty(kh, dtype=np.int64)
        cur_n = -1
        done = 0
        for task in range(lo, hi):
            n = task // hout
            y = task - n * hout
            if n != cur_n:
                cur_n = n
                done = 0
            yy = y + top
            if yy >= fh:
                _fill_bias(out, nhwc, n, y, 0, wout, 1, bias)
                continue
            _fill_bias(out, nhwc, n, y, max(0, xend), wout, 1, bias)
            py = yy % sh
            yq = yy // sh
            # Input rows this output row reads, packed once per chunk into a ring of
            # channel-major rows with zero borders (float64 -> compute dtype on the way).
            a_lo = max(yq - qh, 0)
            a_hi = min(yq, h - 1)
            for a in range(max(done, a_lo), a_hi + 1):
                base = (a % ring) * cin * wpad
                for ci in range(cin):
                    rb = base + ci * wpad
                    src = x[n, ci, a]
                    for c in range(qw):
                        buf[rb + c] = 0
                    for c in range(wd):
                        buf[rb + qw + c] = src[c]
                    for c in range(qw + wd, wpad):
                        buf[rb + c] = 0
            if a_hi + 1 > done:
                done = a_hi + 1
            nti = 0
            for i in range(kh):
                if (i * dh) % sh == py:
                    a = yq - (i * dh) // sh
                    if a >= 0 and a < h:
                        ti[nti] = i
                        nti += 1
            for px in range(sw):
                x0 = (px - left) % sw
                if xend <= x0:
                    continue
                cnt = (xend - x0 + sw - 1) // sw
                xq_lo = (x0 + left) // sw
                nt = 0
                for k in range(nti):
                    i = ti[k]
                    rowoff = ((yq - (i * dh) // sh) % ring) * cin * wpad
                    for j in range(kw):
                        if (j * dw) % sw == px:
                            tx[nt] = rowoff - (j * dw) // sw
                            tw[nt] = (i * kw + j) * cig * cogp
                            nt += 1
                if nt == 0:
                    _fill_bias(out, nhwc, n, y, x0, xend, sw, bias)
                    continue
                for g in range(groups):
                    ob0 = 0
                    while ob0 < cog:
                        nb = min(nb_main, (cog - ob0 + lanes - 1) // lanes)
                        ob = nb * lanes
                        nvalid = min(ob, cog - ob0)
                        pm = _PMAX[nb]
                        ps = _PSMALL[nb]
                        s = 0
                        while s < cnt:
                            rem = cnt - s
                            small = False
                            npx = pm
                            if rem < pm and ((rem + ps - 1) // ps) * (ps + 4) < pm + 4:
                                small = True
                                npx = ps
                            _mk(tile, buf, g * cig * wpad + xq_lo + s + qw, wpad, tx,
                                wflat, g * wgroup + ob0, tw, nt, cig, cogp, nb, small)
                            pv = min(npx, rem)
                            xs = x0 + s * sw
                            oc0 = g * cog + ob0
                            if nhwc:
                                for p in range(pv):
                                    orow = out[n, y, xs + p * sw]
                                    for o in range(nvalid):
                                        orow[oc0 + o] = tile[p * ob + o] + bias[oc0 + o]
                            else:
                                for o in range(nvalid):
                                    orow = out[n, oc0 + o, y]
                                    bv = bias[oc0 + o]
                                    for p in range(pv):
                                        orow[xs + p * sw] = tile[p * ob + o] + bv
                            s += npx
                        ob0 += ob


def conv2d_transpose(x, w, b, *, stride, dilation, groups, crops, out_hw, layout="NCHW", dtype="float32"):
    ct = np.float64 if dtype == "float64" else np.float32
    lanes = 8 if ct == np.float64 else 16
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    nbatch, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    cig = cin // groups
    cout = cog * groups
    hout, wout = out_hw
    cogp = -(-cog // lanes) * lanes
    wp = np.empty((groups, kh, kw, cig, cogp), ct)
    _pack_w(w, wp)
    bias = np.zeros(cout, ct) if b is None else np.asarray(b, dtype=ct)
    nhwc = layout == "NHWC"
    shape = (nbatch, hout, wout, cout) if nhwc else (nbatch, cout, hout, wout)
    out = np.empty(shape, ct)
    import numba
    nchunks = max(1, min(nbatch * hout, numba.get_num_threads()))
    _kernel(x, wp, bias, out, nhwc, stride[0], stride[1], dilation[0], dilation[1], crops[0], crops[2], lanes, nchunks)
    return out
