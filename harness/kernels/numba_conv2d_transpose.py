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




@intrinsic
def _store_nchw(typingctx, out, obase, plane, sw, pv, nch, bias, boff, tile, toff, tstride):
    """Transpose one lanes x lanes block of ``tile`` (rows = pixels, lanes = channels),
    add the bias and store it channel-major: ``out[obase + o*plane + p*sw]`` for
    ``o < nch``, ``p < pv``, ``sw`` in (1, 2). Masked stores never touch other elements."""
    dt = tile.dtype
    sig = types.void(out, obase, plane, sw, pv, nch, bias, boff, tile, toff, tstride)

    def codegen(context, builder, signature, args):
        out_v, obase_v, plane_v, sw_v, pv_v, nch_v, bias_v, boff_v, tile_v, toff_v, tstride_v = args
        ety = context.get_value_type(dt)
        lanes = 16 if dt == types.float32 else 8
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(ety, lanes)
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        mty = ir.VectorType(ir.IntType(1), lanes)

        def data(aty, av):
            return cgutils.create_struct_proxy(aty)(context, builder, value=av).data

        op, bp, tp = data(out, out_v), data(bias, bias_v), data(tile, tile_v)
        bvec = builder.load(builder.bitcast(builder.gep(bp, [boff_v]), vty.as_pointer()), align=align)
        rows = []
        for r in range(lanes):
            ptr = builder.gep(tp, [builder.add(toff_v, builder.mul(tstride_v, ir.Constant(i64, r)))])
            rows.append(builder.fadd(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=align), bvec))
        step = lanes // 2
        while step >= 1:
            for i in range(lanes):
                if i & step:
                    continue
                a, b = rows[i], rows[i + step]
                ma = [c if (c & step) == 0 else lanes + c - step for c in range(lanes)]
                mb = [c + step if (c & step) == 0 else lanes + c for c in range(lanes)]
                rows[i] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, lanes), ma))
                rows[i + step] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, lanes), mb))
            step //= 2
        mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32, mty]),
            f"llvm.masked.store.v{lanes}{'f32' if dt == types.float32 else 'f64'}.p0")
        lane_idx = ir.Constant(ir.VectorType(i64, lanes), list(range(lanes)))

        def splat(v):
            ins = builder.insert_element(ir.Constant(ir.VectorType(i64, lanes), ir.Undefined), v, ir.Constant(i32, 0))
            return builder.shuffle_vector(ins, ins, ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

        pv_splat = splat(pv_v)
        mask1 = builder.icmp_signed("<", lane_idx, pv_splat)
        half = lanes // 2
        # sw == 2: lane c of a store gets pixel c // 2 (even lanes only).
        even = [c % 2 == 0 for c in range(lanes)]
        idx_lo = [c // 2 for c in range(lanes)]
        idx_hi = [half + c // 2 for c in range(lanes)]
        lim_lo = ir.Constant(ir.VectorType(i64, lanes), [c // 2 if even[c] else 1 << 40 for c in range(lanes)])
        lim_hi = ir.Constant(ir.VectorType(i64, lanes), [half + c // 2 if even[c] else 1 << 40 for c in range(lanes)])
        mask_lo = builder.icmp_signed("<", lim_lo, pv_splat)
        mask_hi = builder.icmp_signed("<", lim_hi, pv_splat)
        is_one = builder.icmp_signed("==", sw_v, ir.Constant(i64, 1))
        for l in range(lanes):
            with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, l), nch_v)):
                base = builder.add(obase_v, builder.mul(plane_v, ir.Constant(i64, l)))
                ptr = builder.bitcast(builder.gep(op, [base]), vty.as_pointer())
                with builder.if_else(is_one) as (then, otherwise):
                    with then:
                        builder.call(mstore, [rows[l], ptr, ir.Constant(i32, align), mask1])
                    with otherwise:
                        v_lo = builder.shuffle_vector(rows[l], rows[l], ir.Constant(ir.VectorType(i32, lanes), idx_lo))
                        v_hi = builder.shuffle_vector(rows[l], rows[l], ir.Constant(ir.VectorType(i32, lanes), idx_hi))
                        builder.call(mstore, [v_lo, ptr, ir.Constant(i32, align), mask_lo])
                        ptr2 = builder.bitcast(builder.gep(op, [builder.add(base, ir.Constant(i64, lanes))]), vty.as_pointer())
                        builder.call(mstore, [v_hi, ptr2, ir.Constant(i32, align), mask_hi])
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
    oflat = out.reshape(out.size)
    plane = hout * wout
    biasp = np.zeros(cout + lanes, dtype=out.dtype)
    biasp[:cout] = bias
    total = nbatch * hout
    for ch in prange(nchunks):
        lo = ch * total // nchunks
        hi = (ch + 1) * total // nchunks
        buf = np.empty(ring * cin * wpad, dtype=out.dtype)
        tile = np.zeros(32 * 64, dtype=out.dtype)
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
                            oc0 = g * cog + ob0
                            if nhwc:
                                o_base = ((n * hout + y) * wout + x0 + s * sw) * cout + oc0
                                for p in range(pv):
                                    ob_p = o_base + p * sw * cout
                                    tb = p * ob
                                    for o in range(nvalid):
                                        oflat[ob_p + o] = tile[tb + o] + bias[oc0 + o]
                            elif sw <= 2:
                                o_base = ((n * cout + oc0) * hout + y) * wout + x0 + s * sw
                                for b in range(nb):
                                    nch = min(lanes, nvalid - b * lanes)
                                    if nch <= 0:
                                        break
                                    for p0 in range(0, pv, lanes):
                                        _store_nchw(oflat, o_base + b * lanes * plane + p0 * sw, plane, sw,
                                                    min(lanes, pv - p0), nch, biasp, oc0 + b * lanes,
                                                    tile, p0 * ob + b * lanes, ob)
                            else:
                                o_base = ((n * cout + oc0) * hout + y) * wout + x0 + s * sw
                                for o in range(nvalid):
                                    bv = bias[oc0 + o]
                                    ob_o = o_base + o * plane
                                    for p in range(pv):
                                        oflat[ob_o + p * sw] = tile[p * ob + o] + bv
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
