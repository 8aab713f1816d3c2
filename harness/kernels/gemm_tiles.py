"""Register tiles over an im2col block: output channels × pixel vectors, the weights read in place.

For conv2d on small output images with a long ``K = Cig·kh·kw`` (conv2d b2: an
8×8 output, ``K`` = 2304), the channel tiles of ``harness.kernels.tiles`` need
the whole weight tensor repacked on every call (a quarter of b2's time), and a
row of 8 pixels fills few tile columns. Here an input block is laid out
im2col-style, one row of pixels per ``K`` index in ``w``'s own order
``(ci, i, j)``, so the ``R`` weights a step needs are the next elements of ``R``
rows of ``w`` itself:

- ``gemm_sweep``: ``R`` output channels × ``NB`` (1, 2, 4) vectors of pixels,
  ``R = GEMM_R[NB]`` (24 accumulators), narrower tiles (``gemm_block``: 4, 2,
  1 channels) for the rest of the channels.
- ``copy_rows``: a strided copy of rows of at most ``L`` elements, a masked
  load and store each (the im2col block is copied in pieces of an output row).

Generated as LLVM IR with explicit 512-bit vectors, like the other tiles, and
part of the kernels' cache key (``harness.kernels.jitcache``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Imported for its effect: the kernels' Numba caches also key on this file (see there).
from harness.kernels import jitcache  # noqa: F401
from harness.kernels.tiles import _data_ptr, _index_args, _is_index, _is_vec_array, _lanes_of

__all__ = ["GEMM_R", "copy_rows", "gemm_block", "gemm_sweep"]


@intrinsic
def _gemm_kernel(typingctx, tile, wa, wbase, wstride, xa, xbase, xstride, K, R, NB):
    """Register tile of ``R`` output channels × ``NB`` vectors of pixels, both operands in place::

        tile[(r·NB + b)·L + l] = Σ_{k<K} wa[wbase + r·wstride + k] · xa[xbase + k·xstride + b·L + l]

    ``R`` rows of the weights are read as they are (one broadcast each per step), so ``w`` (C_out, Cig,
    kh, kw) needs no repacking when the input block is in the matching im2col order. ``R`` and ``NB``
    are compile-time constants (``R·NB`` accumulators).
    """
    if not (isinstance(R, types.IntegerLiteral) and isinstance(NB, types.IntegerLiteral)):
        return None
    dt = tile.dtype
    if dt not in (types.float32, types.float64) or not all(_is_vec_array(a, dt) for a in (tile, wa, xa)):
        return None
    if not _is_index(wbase, wstride, xbase, xstride, K):
        return None
    nrow, nvec = R.literal_value, NB.literal_value
    sig = types.void(tile, wa, wbase, wstride, xa, xbase, xstride, K, R, NB)

    def codegen(context, builder, signature, args):
        tile_v, wa_v, wbase_v, wstride_v, xa_v, xbase_v, xstride_v, k_v = (
            _index_args(context, builder, signature, args)[:8])
        ety = context.get_value_type(dt)
        lanes = _lanes_of(dt)
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(ety, lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        tp, wp, xp = (_data_ptr(context, builder, t, v) for t, v in ((tile, tile_v), (wa, wa_v), (xa, xa_v)))
        zero = ir.Constant(vty, [ir.Constant(ety, 0.0)] * lanes)
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nvec)] for _ in range(nrow)]
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty, vty, vty]),
            f"llvm.fma.v{lanes}{'f32' if dt == types.float32 else 'f64'}")
        splat0 = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        undef = ir.Constant(vty, ir.Undefined)
        wrows = [builder.gep(wp, [builder.add(wbase_v, builder.mul(wstride_v, ir.Constant(i64, r)))])
                 for r in range(nrow)]
        x0 = builder.gep(xp, [xbase_v])
        with cgutils.for_range(builder, k_v) as kloop:
            k = kloop.index
            xk = builder.gep(x0, [builder.mul(k, xstride_v)])
            xv = [builder.load(builder.bitcast(builder.gep(xk, [ir.Constant(i64, b * lanes)]), vty.as_pointer()),
                               align=align) for b in range(nvec)]
            for r in range(nrow):
                s = builder.load(builder.gep(wrows[r], [k]))
                wb = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat0)
                for b in range(nvec):
                    builder.store(builder.call(fma, [wb, xv[b], builder.load(accs[r][b])]), accs[r][b])
        for r in range(nrow):
            for b in range(nvec):
                ptr = builder.gep(tp, [ir.Constant(i64, (r * nvec + b) * lanes)])
                builder.store(builder.load(accs[r][b]), builder.bitcast(ptr, vty.as_pointer()), align=align)
        return context.get_dummy_value()

    return sig, codegen


GEMM_R = (0, 12, 12, 0, 6)   # output channels per gemm_sweep tile, by NB = 1, 2, 4 pixel vectors (<= 24 accumulators)


@njit(cache=True)
def gemm_block(nb, left):
    """Output channels of the next ``gemm_sweep`` tile for ``nb`` pixel vectors when ``left`` remain:
    ``GEMM_R[nb]``, then 4, 2 or 1 for the rest."""
    if left >= GEMM_R[nb]:
        return GEMM_R[nb]
    if left >= 4:
        return 4
    if left >= 2:
        return 2
    return 1


@njit(cache=True)
def gemm_sweep(tile, wa, wbase, wstride, xa, xbase, xstride, k, r, nb):
    """``_gemm_kernel`` for ``nb`` (1, 2, 4) pixel vectors × ``r = gemm_block(nb, ...)`` output channels.

    The tile is ``r·nb·L`` elements, row ``r`` and vector ``b`` at ``(r·nb + b)·L``.
    """
    if nb == 4:
        if r == 6:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 6, 4)
        elif r == 4:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 4, 4)
        elif r == 2:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 2, 4)
        else:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 1, 4)
    elif nb == 2:
        if r == 12:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 12, 2)
        elif r == 4:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 4, 2)
        elif r == 2:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 2, 2)
        else:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 1, 2)
    else:
        if r == 12:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 12, 1)
        elif r == 4:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 4, 1)
        elif r == 2:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 2, 1)
        else:
            _gemm_kernel(tile, wa, wbase, wstride, xa, xbase, xstride, k, 1, 1)



@intrinsic
def copy_rows(typingctx, dst, doff, dstride, src, soff, sstride, nrows, n):
    """``dst[doff + r·dstride + l] = src[soff + r·sstride + l]`` for ``r < nrows``, ``l < n <= L``: a
    masked vector load and store per row (the pieces of an im2col block, each an output row wide,
    are too short for a loop over elements to pay off)."""
    dt = dst.dtype
    if dt not in (types.float32, types.float64) or not all(_is_vec_array(a, dt) for a in (dst, src)):
        return None
    if not _is_index(doff, dstride, soff, sstride, nrows, n):
        return None
    sig = types.void(dst, doff, dstride, src, soff, sstride, nrows, n)

    def codegen(context, builder, signature, args):
        dst_v, doff_v, dstride_v, src_v, soff_v, sstride_v, nrows_v, n_v = _index_args(
            context, builder, signature, args)
        ety = context.get_value_type(dt)
        lanes = _lanes_of(dt)
        align = ir.Constant(ir.IntType(32), 4 if dt == types.float32 else 8)
        vty = ir.VectorType(ety, lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        mty = ir.VectorType(ir.IntType(1), lanes)
        dp, sp = (_data_ptr(context, builder, t, v) for t, v in ((dst, dst_v), (src, src_v)))
        i64vec = ir.VectorType(i64, lanes)
        ins = builder.insert_element(ir.Constant(i64vec, ir.Undefined), n_v, ir.Constant(i32, 0))
        n_splat = builder.shuffle_vector(ins, ins, ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))
        mask = builder.icmp_signed("<", ir.Constant(i64vec, list(range(lanes))), n_splat)
        suffix = f"v{lanes}{'f32' if dt == types.float32 else 'f64'}.p0"
        mload = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty.as_pointer(), i32, mty, vty]), f"llvm.masked.load.{suffix}")
        mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32, mty]),
            f"llvm.masked.store.{suffix}")
        s0 = builder.gep(sp, [soff_v])
        d0 = builder.gep(dp, [doff_v])
        with cgutils.for_range(builder, nrows_v) as loop:
            r = loop.index
            sptr = builder.bitcast(builder.gep(s0, [builder.mul(r, sstride_v)]), vty.as_pointer())
            dptr = builder.bitcast(builder.gep(d0, [builder.mul(r, dstride_v)]), vty.as_pointer())
            v = builder.call(mload, [sptr, align, mask, ir.Constant(vty, ir.Undefined)])
            builder.call(mstore, [v, dptr, align, mask])
        return context.get_dummy_value()

    return sig, codegen
