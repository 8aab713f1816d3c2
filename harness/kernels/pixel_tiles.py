"""Register tiles with pixels along the vector lanes, for convolutions with few output channels per group.

``harness.kernels.tiles`` puts ``L`` output channels in each vector; with
``Cog < L`` channels per group (grouped, depthwise) most lanes would idle.
Here a vector holds ``L`` consecutive output pixels (phase-packed input rows
make a tap's inputs for them consecutive too), and the weights are broadcast:

- ``row_sweep``: one output channel, ``R`` rows × ``NB`` vectors of pixels
  (depthwise: a single input channel per output).
- ``oc_sweep``: ``R`` output channels × ``NB`` vectors of pixels anywhere in
  the packed input (``xoffs``): each input vector loaded serves ``R``
  multiply-adds, each broadcast weight ``NB`` (grouped convolutions: 8 output
  channels of 8 inputs each). ``oc_sweep_out``: the same tile stored straight
  from the registers into NCHW output planes, the bias added (masked stores).
- ``store_pair``: the two column phases of a stride-2 output row, interleaved
  in registers and stored with masked stores.

All are generated as LLVM IR with explicit 512-bit vectors, like the tiles
of ``harness.kernels.tiles``, and belong to the kernels' cache key
(``harness.kernels.jitcache``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Imported for its effect: the kernels' Numba caches also key on this file (see there).
from harness.kernels import jitcache  # noqa: F401
from harness.kernels.tiles import _data_ptr, _index_args, _is_index, _is_vec_array, _lanes_of

__all__ = ["OC_MAX", "oc_block", "oc_sweep", "oc_sweep_out", "pack_oc_weights", "row_sweep", "store_pair"]

OC_MAX = 8   # output channels per oc_sweep tile (8 x 3 vectors: 24 accumulators, 11 loads per 24 FMAs)


@intrinsic
def _row_kernel(typingctx, tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, R, NB):
    """Register tile of ``R`` rows × ``NB`` vectors of pixels, weights broadcast::

        tile[(r·NB + b)·L + l] = Σ_t wv[wbase + toffw[t]] · xa[xbase + r·rstride + toffx[t] + b·L + l]

    ``R`` and ``NB`` are compile-time constants (``R·NB`` accumulators).
    """
    if not (isinstance(R, types.IntegerLiteral) and isinstance(NB, types.IntegerLiteral)):
        return None
    dt = tile.dtype
    if dt not in (types.float32, types.float64) or not all(_is_vec_array(a, dt) for a in (tile, wv, xa)):
        return None
    if not (_is_vec_array(toffw, types.int64) and _is_vec_array(toffx, types.int64)
            and _is_index(wbase, xbase, rstride, ntaps)):
        return None
    nrow, nvec = R.literal_value, NB.literal_value
    sig = types.void(tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, R, NB)

    def codegen(context, builder, signature, args):
        tile_v, wv_v, wbase_v, toffw_v, xa_v, xbase_v, rstride_v, toffx_v, ntaps_v = (
            _index_args(context, builder, signature, args)[:9])
        ety = context.get_value_type(dt)
        lanes = _lanes_of(dt)
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(ety, lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        tp, wp, xp = (_data_ptr(context, builder, t, v) for t, v in ((tile, tile_v), (wv, wv_v), (xa, xa_v)))
        twp = _data_ptr(context, builder, toffw, toffw_v)
        txp = _data_ptr(context, builder, toffx, toffx_v)
        zero = ir.Constant(vty, [ir.Constant(ety, 0.0)] * lanes)
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nvec)] for _ in range(nrow)]
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty, vty, vty]),
            f"llvm.fma.v{lanes}{'f32' if dt == types.float32 else 'f64'}")
        splat0 = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        undef = ir.Constant(vty, ir.Undefined)
        with cgutils.for_range(builder, ntaps_v) as tloop:
            t = tloop.index
            s = builder.load(builder.gep(wp, [builder.add(wbase_v, builder.load(builder.gep(twp, [t])))]))
            wb = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat0)
            xo = builder.add(xbase_v, builder.load(builder.gep(txp, [t])))
            for r in range(nrow):
                xr = builder.add(xo, builder.mul(rstride_v, ir.Constant(i64, r)))
                for b in range(nvec):
                    ptr = builder.gep(xp, [builder.add(xr, ir.Constant(i64, b * lanes))])
                    xv = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=align)
                    builder.store(builder.call(fma, [wb, xv, builder.load(accs[r][b])]), accs[r][b])
        for r in range(nrow):
            for b in range(nvec):
                ptr = builder.gep(tp, [ir.Constant(i64, (r * nvec + b) * lanes)])
                builder.store(builder.load(accs[r][b]), builder.bitcast(ptr, vty.as_pointer()), align=align)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def row_sweep(tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, nb, many):
    """``_row_kernel`` for ``nb`` (1, 2, 4) pixel vectors and ``8 // nb`` rows if ``many``, else 1 row.

    For one input channel per group (depthwise), where a tile of output
    channels would use ``1/L`` of each vector. Reads ``xa`` up to ``nb·L``
    past each tap's start.
    """
    if nb == 1:
        if many:
            _row_kernel(tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, 8, 1)
        else:
            _row_kernel(tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, 1, 1)
    elif nb == 2:
        if many:
            _row_kernel(tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, 4, 2)
        else:
            _row_kernel(tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, 1, 2)
    else:
        if many:
            _row_kernel(tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, 2, 4)
        else:
            _row_kernel(tile, wv, wbase, toffw, xa, xbase, rstride, toffx, ntaps, 1, 4)


def _oc_sums(context, builder, dt, nrow, nvec, wv, wv_v, wbase_v, toffw, toffw_v, xa, xa_v, xoffs, xoffs_v,
             toffx, toffx_v, ntaps_v):
    """The sweep of ``_oc_kernel``: returns the ``nrow × nvec`` accumulator vectors."""
    ety = context.get_value_type(dt)
    lanes = _lanes_of(dt)
    align = 4 if dt == types.float32 else 8
    vty = ir.VectorType(ety, lanes)
    i64, i32 = ir.IntType(64), ir.IntType(32)
    wp, xp = (_data_ptr(context, builder, t, v) for t, v in ((wv, wv_v), (xa, xa_v)))
    twp = _data_ptr(context, builder, toffw, toffw_v)
    txp = _data_ptr(context, builder, toffx, toffx_v)
    xop = _data_ptr(context, builder, xoffs, xoffs_v)
    zero = ir.Constant(vty, [ir.Constant(ety, 0.0)] * lanes)
    accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nvec)] for _ in range(nrow)]
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty, vty, vty]),
        f"llvm.fma.v{lanes}{'f32' if dt == types.float32 else 'f64'}")
    splat0 = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
    undef = ir.Constant(vty, ir.Undefined)
    xbases = [builder.gep(xp, [builder.load(builder.gep(xop, [ir.Constant(i64, b)]))]) for b in range(nvec)]
    wb0 = builder.gep(wp, [wbase_v])
    with cgutils.for_range(builder, ntaps_v) as tloop:
        t = tloop.index
        wrow = builder.gep(wb0, [builder.mul(builder.load(builder.gep(twp, [t])), ir.Constant(i64, nrow))])
        xo = builder.load(builder.gep(txp, [t]))
        xv = [builder.load(builder.bitcast(builder.gep(xbases[b], [xo]), vty.as_pointer()), align=align)
              for b in range(nvec)]
        for r in range(nrow):
            s = builder.load(builder.gep(wrow, [ir.Constant(i64, r)]))
            wb = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat0)
            for b in range(nvec):
                builder.store(builder.call(fma, [wb, xv[b], builder.load(accs[r][b])]), accs[r][b])
    return [[builder.load(accs[r][b]) for b in range(nvec)] for r in range(nrow)]


def _oc_types_ok(dt, R, NB, wv, toffw, xa, xoffs, toffx, wbase, ntaps):
    return (isinstance(R, types.IntegerLiteral) and isinstance(NB, types.IntegerLiteral)
            and dt in (types.float32, types.float64) and all(_is_vec_array(a, dt) for a in (wv, xa))
            and _is_vec_array(toffw, types.int64) and _is_vec_array(toffx, types.int64)
            and _is_vec_array(xoffs, types.int64) and _is_index(wbase, ntaps))


@intrinsic
def _oc_kernel(typingctx, tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, R, NB):
    """Register tile of ``R`` output channels × ``NB`` vectors of pixels::

        tile[(r·NB + b)·L + l] = Σ_t wv[wbase + toffw[t]·R + r] · xa[xoffs[b] + toffx[t] + l]

    The ``R`` weights of a tap are adjacent (``pack_oc_weights``): one address, ``R`` broadcasts.
    ``R`` and ``NB`` are compile-time constants (``R·NB`` accumulators).
    """
    dt = tile.dtype
    if not (_oc_types_ok(dt, R, NB, wv, toffw, xa, xoffs, toffx, wbase, ntaps) and _is_vec_array(tile, dt)):
        return None
    nrow, nvec = R.literal_value, NB.literal_value
    sig = types.void(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, R, NB)

    def codegen(context, builder, signature, args):
        tile_v, wv_v, wbase_v, toffw_v, xa_v, xoffs_v, toffx_v, ntaps_v = (
            _index_args(context, builder, signature, args)[:8])
        sums = _oc_sums(context, builder, dt, nrow, nvec, wv, wv_v, wbase_v, toffw, toffw_v, xa, xa_v, xoffs,
                        xoffs_v, toffx, toffx_v, ntaps_v)
        lanes = _lanes_of(dt)
        vty = ir.VectorType(context.get_value_type(dt), lanes)
        tp = _data_ptr(context, builder, tile, tile_v)
        for r in range(nrow):
            for b in range(nvec):
                ptr = builder.gep(tp, [ir.Constant(ir.IntType(64), (r * nvec + b) * lanes)])
                builder.store(sums[r][b], builder.bitcast(ptr, vty.as_pointer()), align=4 if dt == types.float32 else 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _oc_kernel_out(typingctx, out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, R, NB):
    """``_oc_kernel`` whose tile goes straight to a flat NCHW output, the bias added::

        out[ooffs[b] + r·ostride + l] = bias[boff + r] + Σ_t ...   for l < npv[b]

    (masked stores: no other element of ``out`` is touched).
    """
    dt = out.dtype
    if not (_oc_types_ok(dt, R, NB, wv, toffw, xa, xoffs, toffx, wbase, ntaps) and _is_vec_array(out, dt)
            and _is_vec_array(bias, dt) and _is_vec_array(ooffs, types.int64) and _is_vec_array(npv, types.int64)
            and _is_index(ostride, boff)):
        return None
    nrow, nvec = R.literal_value, NB.literal_value
    sig = types.void(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, R, NB)

    def codegen(context, builder, signature, args):
        (out_v, ooffs_v, ostride_v, npv_v, bias_v, boff_v, wv_v, wbase_v, toffw_v, xa_v, xoffs_v, toffx_v,
         ntaps_v) = _index_args(context, builder, signature, args)[:13]
        sums = _oc_sums(context, builder, dt, nrow, nvec, wv, wv_v, wbase_v, toffw, toffw_v, xa, xa_v, xoffs,
                        xoffs_v, toffx, toffx_v, ntaps_v)
        lanes = _lanes_of(dt)
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(context.get_value_type(dt), lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        op, bp = (_data_ptr(context, builder, t, v) for t, v in ((out, out_v), (bias, bias_v)))
        oop = _data_ptr(context, builder, ooffs, ooffs_v)
        npp = _data_ptr(context, builder, npv, npv_v)
        undef = ir.Constant(vty, ir.Undefined)
        splat0 = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        i64vec = ir.VectorType(i64, lanes)
        lane_ids = ir.Constant(i64vec, list(range(lanes)))
        mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32,
                                                            ir.VectorType(ir.IntType(1), lanes)]),
            f"llvm.masked.store.v{lanes}{'f32' if dt == types.float32 else 'f64'}.p0")
        masks, bases = [], []
        for b in range(nvec):
            n = builder.load(builder.gep(npp, [ir.Constant(i64, b)]))
            nv = builder.shuffle_vector(builder.insert_element(ir.Constant(i64vec, ir.Undefined), n,
                                                              ir.Constant(i32, 0)), ir.Constant(i64vec, ir.Undefined),
                                        splat0)
            masks.append(builder.icmp_signed("<", lane_ids, nv))
            bases.append(builder.gep(op, [builder.load(builder.gep(oop, [ir.Constant(i64, b)]))]))
        for r in range(nrow):
            s = builder.load(builder.gep(bp, [builder.add(boff_v, ir.Constant(i64, r))]))
            bv = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat0)
            roff = builder.mul(ostride_v, ir.Constant(i64, r))
            for b in range(nvec):
                ptr = builder.bitcast(builder.gep(bases[b], [roff]), vty.as_pointer())
                builder.call(mstore, [builder.fadd(sums[r][b], bv), ptr, ir.Constant(i32, align), masks[b]])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def oc_block(left):
    """Output channels of the next ``oc_sweep`` tile when ``left`` remain: 8, 4, 2 or 1."""
    if left >= 8:
        return 8
    if left >= 4:
        return 4
    if left >= 2:
        return 2
    return 1


@njit(cache=True)
def pack_oc_weights(w, transposed, groups, dst):
    """``w`` in blocks of ``oc_block`` output channels, the block's channels adjacent per tap.

    ``w`` is (C_out, Cig, kh, kw), or (C_in, Cog, kh, kw) if ``transposed``. Block ``(g, o0)`` of
    ``r`` channels starts at ``dst[(g·Cog + o0)·Cig·kh·kw]``; tap ``t = (ci·kh + i)·kw + j`` of channel
    ``o0 + rr`` is at ``t·r + rr`` in it.
    """
    if transposed:
        cin, cog, kh, kw = w.shape
        cig = cin // groups
    else:
        cout, cig, kh, kw = w.shape
        cog = cout // groups
    kk = kh * kw
    for g in range(groups):
        o0 = 0
        while o0 < cog:
            r = oc_block(cog - o0)
            blk = dst[(g * cog + o0) * cig * kk:]
            for ci in range(cig):
                for k in range(kk):
                    i = k // kw
                    j = k - i * kw
                    for rr in range(r):
                        if transposed:
                            blk[(ci * kk + k) * r + rr] = w[g * cig + ci, o0 + rr, i, j]
                        else:
                            blk[(ci * kk + k) * r + rr] = w[g * cog + o0 + rr, ci, i, j]
            o0 += r


@njit(cache=True)
def oc_sweep(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, r, nb):
    """``_oc_kernel`` for ``r`` (``oc_block``: 8, 4, 2, 1) output channels × ``nb`` (1, 2, 3) pixel vectors,
    weights packed by ``pack_oc_weights`` (block at ``wbase``, tap ``t`` at ``toffw[t]·r``).

    The tile is ``r·nb·L`` elements, row ``r`` and vector ``b`` at ``(r·nb + b)·L``.
    Reads ``xa`` up to ``L`` past each vector's start and tap offset.
    """
    if nb == 3:
        if r == 8:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 8, 3)
        elif r == 4:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 4, 3)
        elif r == 2:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 2, 3)
        else:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 1, 3)
    elif nb == 1:
        if r == 8:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 8, 1)
        elif r == 4:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 4, 1)
        elif r == 2:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 2, 1)
        else:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 1, 1)
    else:
        if r == 8:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 8, 2)
        elif r == 4:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 4, 2)
        elif r == 2:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 2, 2)
        else:
            _oc_kernel(tile, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 1, 2)


@njit(cache=True)
def oc_sweep_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, r, nb):
    """``oc_sweep`` storing its tile straight into the flat NCHW output ``out`` with the bias added:
    vector ``b`` of channel ``rr`` (``rr < r``) to ``out[ooffs[b] + rr·ostride ...]``, its first ``npv[b]``
    lanes (``_oc_kernel_out``)."""
    if nb == 3:
        if r == 8:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 8, 3)
        elif r == 4:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 4, 3)
        elif r == 2:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 2, 3)
        else:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 1, 3)
    elif nb == 1:
        if r == 8:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 8, 1)
        elif r == 4:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 4, 1)
        elif r == 2:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 2, 1)
        else:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 1, 1)
    else:
        if r == 8:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 8, 2)
        elif r == 4:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 4, 2)
        elif r == 2:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 2, 2)
        else:
            _oc_kernel_out(out, ooffs, ostride, npv, bias, boff, wv, wbase, toffw, xa, xoffs, toffx, ntaps, 1, 2)


@intrinsic
def store_pair(typingctx, out, obase, ta, aoff, tb, boff, na, nb, bias):
    """Two vectors of a stride-2 output row's phases, interleaved: for ``k < L``,
    ``out[obase + 2k] = ta[aoff + k] + bias`` if ``k < na`` and ``out[obase + 2k + 1] = tb[boff + k] + bias``
    if ``k < nb`` (masked stores: no other element of ``out`` is touched)."""
    dt = ta.dtype
    if dt not in (types.float32, types.float64) or not all(_is_vec_array(a, dt) for a in (out, ta, tb)):
        return None
    if not (_is_index(obase, aoff, boff, na, nb) and bias == dt):
        return None
    sig = types.void(out, obase, ta, aoff, tb, boff, na, nb, bias)

    def codegen(context, builder, signature, args):
        out_v, obase_v, ta_v, aoff_v, tb_v, boff_v, na_v, nb_v = _index_args(context, builder, signature, args)[:8]
        bias_v = args[8]
        ety = context.get_value_type(dt)
        lanes = _lanes_of(dt)
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(ety, lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        op, ap, bp = (_data_ptr(context, builder, t, v) for t, v in ((out, out_v), (ta, ta_v), (tb, tb_v)))
        undef = ir.Constant(vty, ir.Undefined)
        bvec = builder.shuffle_vector(builder.insert_element(undef, bias_v, ir.Constant(i32, 0)), undef,
                                      ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))
        va = builder.fadd(builder.load(builder.bitcast(builder.gep(ap, [aoff_v]), vty.as_pointer()), align=align), bvec)
        vb = builder.fadd(builder.load(builder.bitcast(builder.gep(bp, [boff_v]), vty.as_pointer()), align=align), bvec)
        i64vec = ir.VectorType(i64, lanes)
        half = lanes // 2

        def splat(v):
            ins = builder.insert_element(ir.Constant(i64vec, ir.Undefined), v, ir.Constant(i32, 0))
            return builder.shuffle_vector(ins, ins, ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

        sa, sb = splat(na_v), splat(nb_v)
        mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32,
                                                            ir.VectorType(ir.IntType(1), lanes)]),
            f"llvm.masked.store.v{lanes}{'f32' if dt == types.float32 else 'f64'}.p0")
        for part in range(2):
            k = [part * half + m // 2 for m in range(lanes)]
            # lane m: from ta (even m) or tb (odd m), element k[m]
            sel = ir.Constant(ir.VectorType(i32, lanes), [k[m] + (lanes if m % 2 else 0) for m in range(lanes)])
            v = builder.shuffle_vector(va, vb, sel)
            kv = ir.Constant(i64vec, k)
            even = ir.Constant(ir.VectorType(ir.IntType(1), lanes), [m % 2 == 0 for m in range(lanes)])
            mask = builder.select(even, builder.icmp_signed("<", kv, sa), builder.icmp_signed("<", kv, sb))
            ptr = builder.gep(op, [builder.add(obase_v, ir.Constant(i64, part * lanes))])
            builder.call(mstore, [v, builder.bitcast(ptr, vty.as_pointer()), ir.Constant(i32, align), mask])
        return context.get_dummy_value()

    return sig, codegen
