"""The transforms of Winograd F(2×2, 3×3) a vector of tiles at a time (conv2d's Winograd path).

``harness.ops.conv2d.numba_winograd`` owns the algorithm (its Note [Winograd
F(2x2, 3x3)]); here are its two per-tile steps, ``L`` tiles along one tile
row at a time, each lane a tile, as LLVM IR with explicit 512-bit vectors like
the other tiles (Numba's vectoriser would need alias checks between the 16
streams of each step and gives up):

- ``input_transform``: ``V = Bᵀ d B`` of the 4×4 input patches of ``n <= L``
  tiles of one channel, read from the input plane itself (per patch row two
  pairs of masked loads, zero outside the plane, split into the patch's even
  and odd columns by shuffles: packing the rows first, as the other paths do,
  cost as much as the transform), the 16 results stored ``vstride`` apart;
  and the statistics the caller's fallback needs, kept in
  integer lanes (``stats``): the largest ``|d|`` as float32 bits (at or above
  the bits of inf when a value is inf or NaN), the smallest nonzero one
  (bits less 1, unsigned: a zero wraps to the largest and never wins), and
  the sum of the ``|d|`` (float32 lanes).
- ``output_transform``: ``Y = Aᵀ M A`` of the 16 products of ``L`` tiles, plus
  the bias, into a stage of 4 vectors (``y00, y01, y10, y11``);
  ``store_pairs`` writes a stage's two output rows into NCHW, the two columns
  of each tile interleaved, masked at the output's edge.

Part of the kernels' cache key (``harness.kernels.jitcache``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# Imported for its effect: the kernels' Numba caches also key on this file (see there).
from harness.kernels import jitcache  # noqa: F401
from harness.kernels.tiles import _data_ptr, _index_args, _is_index, _is_vec_array

__all__ = ["WINO_LANES", "input_transform", "output_transform", "store_pairs"]

WINO_LANES = 16   # float32 lanes: the path computes in float32 only (a name unique among embedded kernel sources)


def _vec_helpers(builder, n_v):
    """(vector type, i32 type, mask of lanes below ``n_v``, masked load, masked store) for float32 × 16."""
    f32, i64, i32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
    vty = ir.VectorType(f32, WINO_LANES)
    mty = ir.VectorType(ir.IntType(1), WINO_LANES)
    i64vec = ir.VectorType(i64, WINO_LANES)
    ins = builder.insert_element(ir.Constant(i64vec, ir.Undefined), n_v, ir.Constant(i32, 0))
    splat = builder.shuffle_vector(ins, ins, ir.Constant(ir.VectorType(i32, WINO_LANES), [0] * WINO_LANES))
    mask = builder.icmp_signed("<", ir.Constant(i64vec, list(range(WINO_LANES))), splat)
    mload = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty.as_pointer(), i32, mty, vty]), "llvm.masked.load.v16f32.p0")
    mstore = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32, mty]),
        "llvm.masked.store.v16f32.p0")
    return vty, mask, mload, mstore


def _combine(builder, a, b, c, d, rows):
    """One axis of a transform on 4 values: ``Bᵀ`` (rows=4: a−c, b+c, c−b, b−d) or ``Aᵀ`` (rows=2: a+b+c,
    b−c−d)."""
    if rows == 4:
        return [builder.fsub(a, c), builder.fadd(b, c), builder.fsub(c, b), builder.fsub(b, d)]
    return [builder.fadd(builder.fadd(a, b), c), builder.fsub(builder.fsub(b, c), d)]


@intrinsic
def input_transform(typingctx, xf, plane, a0, h, wd, c0, v, voff, vstride, n, stats, sums):
    """``v[voff + (4i + j)·vstride + l] = (Bᵀ d B)[i, j]`` for tiles ``l < n <= L``, where ``d[a, b] =
    xf[plane + (a0 + a)·wd + c0 + 2l + b]`` (0 outside the ``h × wd`` plane: padding); ``stats`` (2·L
    uint32) updated: lanes ``0..L-1`` the largest ``|d|`` bits, ``L..2L-1`` the smallest nonzero ``|d|``
    bits less 1; ``sums`` (L float32) += the ``|d|`` (16 per tile ``l < n``, padding as 0)."""
    if not (all(_is_vec_array(a, types.float32) for a in (xf, v, sums)) and _is_vec_array(stats, types.uint32)
            and _is_index(plane, a0, h, wd, c0, voff, vstride, n)):
        return None
    sig = types.void(xf, plane, a0, h, wd, c0, v, voff, vstride, n, stats, sums)

    def codegen(context, builder, signature, args):
        xf_v, plane_v, a0_v, h_v, wd_v, c0_v, v_v, voff_v, vstride_v, n_v, stats_v, sums_v = _index_args(
            context, builder, signature, args)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vty, nmask, mload, mstore = _vec_helpers(builder, n_v)
        ity = ir.VectorType(i32, WINO_LANES)
        i64vec = ir.VectorType(i64, WINO_LANES)
        xp, vp, sp = (_data_ptr(context, builder, t, a) for t, a in ((xf, xf_v), (v, v_v), (stats, stats_v)))
        zero = ir.Constant(vty, [0.0] * WINO_LANES)
        four = ir.Constant(i32, 4)

        def splat(value):
            ins = builder.insert_element(ir.Constant(i64vec, ir.Undefined), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(ins, ins, ir.Constant(ity, [0] * WINO_LANES))

        # Columns c0 + o + k for the loads at o = 0, 16 (patch columns 0, 1 of 16 tiles, interleaved) and
        # o = 2, 18 (columns 2, 3): lane k of a load belongs to tile (o div 16)·8 + k div 2.
        lane = ir.Constant(i64vec, list(range(WINO_LANES)))
        n_s, wd_s, c0_s = splat(n_v), splat(wd_v), splat(c0_v)
        masks = {}
        for o in (0, WINO_LANES, 2, WINO_LANES + 2):
            col = builder.add(builder.add(c0_s, lane), ir.Constant(i64vec, [o] * WINO_LANES))
            tile = ir.Constant(i64vec, [(o // WINO_LANES) * (WINO_LANES // 2) + k // 2 for k in range(WINO_LANES)])
            inside = builder.and_(builder.icmp_signed(">=", col, ir.Constant(i64vec, [0] * WINO_LANES)),
                                  builder.icmp_signed("<", col, wd_s))
            masks[o] = builder.and_(inside, builder.icmp_signed("<", tile, n_s))
        evens = ir.Constant(ity, [2 * k for k in range(WINO_LANES)])
        odds = ir.Constant(ity, [2 * k + 1 for k in range(WINO_LANES)])
        d = []
        for a in range(4):
            row = builder.add(a0_v, ir.Constant(i64, a))
            valid = builder.and_(builder.icmp_signed(">=", row, ir.Constant(i64, 0)),
                                 builder.icmp_signed("<", row, h_v))
            vsplat = builder.icmp_signed("!=", splat(builder.zext(valid, i64)), ir.Constant(i64vec, [0] * WINO_LANES))
            base = builder.add(builder.add(plane_v, builder.mul(row, wd_v)), c0_v)
            loaded = {}
            for o in masks:
                ptr = builder.bitcast(builder.gep(xp, [builder.add(base, ir.Constant(i64, o))]), vty.as_pointer())
                loaded[o] = builder.call(mload, [ptr, four, builder.and_(masks[o], vsplat), zero])
            lo, hi = loaded[0], loaded[WINO_LANES]
            lo2, hi2 = loaded[2], loaded[WINO_LANES + 2]
            d.append([builder.shuffle_vector(lo, hi, evens), builder.shuffle_vector(lo, hi, odds),
                      builder.shuffle_vector(lo2, hi2, evens), builder.shuffle_vector(lo2, hi2, odds)])
        # statistics of the loaded values (masked lanes are 0: no effect on either)
        sptr = builder.bitcast(sp, ity.as_pointer())
        sptr2 = builder.bitcast(builder.gep(sp, [ir.Constant(i64, WINO_LANES)]), ity.as_pointer())
        sumptr = builder.bitcast(_data_ptr(context, builder, sums, sums_v), vty.as_pointer())
        big, small = builder.load(sptr, align=4), builder.load(sptr2, align=4)
        total = builder.load(sumptr, align=4)
        absmask, ones = ir.Constant(ity, [0x7FFFFFFF] * WINO_LANES), ir.Constant(ity, [1] * WINO_LANES)
        for row in d:
            for val in row:
                bits = builder.and_(builder.bitcast(val, ity), absmask)
                big = builder.select(builder.icmp_unsigned(">", bits, big), bits, big)
                less = builder.sub(bits, ones)
                small = builder.select(builder.icmp_unsigned("<", less, small), less, small)
                total = builder.fadd(total, builder.bitcast(bits, vty))
        builder.store(big, sptr, align=4)
        builder.store(small, sptr2, align=4)
        builder.store(total, sumptr, align=4)
        # Bᵀ d: along the rows (a), then (Bᵀ d) B along the columns (b)
        t = [_combine(builder, d[0][b], d[1][b], d[2][b], d[3][b], 4) for b in range(4)]   # t[b][i]
        for i in range(4):
            out = _combine(builder, t[0][i], t[1][i], t[2][i], t[3][i], 4)
            for j in range(4):
                off = builder.add(voff_v, builder.mul(vstride_v, ir.Constant(i64, 4 * i + j)))
                builder.call(mstore, [out[j], builder.bitcast(builder.gep(vp, [off]), vty.as_pointer()), four, nmask])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def output_transform(typingctx, m, moff, mstride, bias, stage):
    """``stage[(2i + j)·L + l] = (Aᵀ M A)[i, j] + bias`` where ``M[a, b] = m[moff + (4a + b)·mstride + l]``
    (all ``L`` lanes read: the caller keeps ``L`` elements of slack past its products)."""
    if not (all(_is_vec_array(a, types.float32) for a in (m, stage)) and _is_index(moff, mstride)
            and isinstance(bias, types.Float)):
        return None
    sig = types.void(m, moff, mstride, bias, stage)

    def codegen(context, builder, signature, args):
        m_v, moff_v, mstride_v, bias_v, stage_v = _index_args(context, builder, signature, args)
        bias_v = context.cast(builder, bias_v, signature.args[3], types.float32)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vty = ir.VectorType(ir.FloatType(), WINO_LANES)
        mp, stp = (_data_ptr(context, builder, t, a) for t, a in ((m, m_v), (stage, stage_v)))
        vals = [[builder.load(builder.bitcast(builder.gep(mp, [builder.add(moff_v, builder.mul(
            mstride_v, ir.Constant(i64, 4 * a + b)))]), vty.as_pointer()), align=4) for b in range(4)]
            for a in range(4)]
        ins = builder.insert_element(ir.Constant(vty, ir.Undefined), bias_v, ir.Constant(i32, 0))
        bvec = builder.shuffle_vector(ins, ins, ir.Constant(ir.VectorType(i32, WINO_LANES), [0] * WINO_LANES))
        t = [_combine(builder, vals[0][b], vals[1][b], vals[2][b], vals[3][b], 2) for b in range(4)]   # t[b][i]
        for i in range(2):
            out = _combine(builder, t[0][i], t[1][i], t[2][i], t[3][i], 2)
            for j in range(2):
                ptr = builder.bitcast(builder.gep(stp, [ir.Constant(i64, (2 * i + j) * WINO_LANES)]), vty.as_pointer())
                builder.store(builder.fadd(out[j], bvec), ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_pairs(typingctx, stage, out, obase, orow, ncols, nrows):
    """``out[obase + i·orow + 2l + j] = stage[(2i + j)·L + l]`` for ``i < nrows`` (1 or 2) and
    ``2l + j < ncols`` (at most 2·L): a stage's tiles as two NCHW output rows, masked stores only."""
    if not (all(_is_vec_array(a, types.float32) for a in (stage, out)) and _is_index(obase, orow, ncols, nrows)):
        return None
    sig = types.void(stage, out, obase, orow, ncols, nrows)

    def codegen(context, builder, signature, args):
        stage_v, out_v, obase_v, orow_v, ncols_v, nrows_v = _index_args(context, builder, signature, args)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vty, mask_lo, _, mstore = _vec_helpers(builder, ncols_v)
        _, mask_hi, _, _ = _vec_helpers(builder, builder.sub(ncols_v, ir.Constant(i64, WINO_LANES)))
        stp, op = (_data_ptr(context, builder, t, a) for t, a in ((stage, stage_v), (out, out_v)))
        ivec = ir.VectorType(i32, WINO_LANES)
        lo = ir.Constant(ivec, [k // 2 + (WINO_LANES if k % 2 else 0) for k in range(WINO_LANES)])
        hi = ir.Constant(ivec, [WINO_LANES // 2 + k // 2 + (WINO_LANES if k % 2 else 0) for k in range(WINO_LANES)])
        for i in range(2):
            with builder.if_then(builder.icmp_signed(">", nrows_v, ir.Constant(i64, i))):
                y0, y1 = (builder.load(builder.bitcast(builder.gep(stp, [ir.Constant(i64, (2 * i + j) * WINO_LANES)]),
                                                       vty.as_pointer()), align=4) for j in range(2))
                base = builder.add(obase_v, builder.mul(orow_v, ir.Constant(i64, i)))
                for half, sel, mask in ((0, lo, mask_lo), (WINO_LANES, hi, mask_hi)):
                    ptr = builder.bitcast(builder.gep(op, [builder.add(base, ir.Constant(i64, half))]),
                                          vty.as_pointer())
                    builder.call(mstore, [builder.shuffle_vector(y0, y1, sel), ptr, ir.Constant(i32, 4), mask])
        return context.get_dummy_value()

    return sig, codegen
