"""Register-tile building blocks shared by the Numba convolution kernels.

Both ``harness.kernels.numba_conv2d_transpose`` and
``harness.ops.conv2d.numba_kernel`` are output-stationary direct convolutions
that sweep ``K = taps × Cig`` into a tile of ``P`` output pixels × ``NB·L``
output channels; this module owns that tile:

- ``microkernel``: the sweep, generated as LLVM IR with explicit 512-bit
  vectors (``@intrinsic``), because Numba's auto-vectoriser targets 256-bit
  vectors on this CPU (LLVM's ``prefer-256-bit`` tuning) and cannot keep a 2-D
  accumulator tile in registers. On CPUs without AVX-512 LLVM splits the
  vectors; the results are the same.
- ``tile_sweep``: picks the compile-time tile shape (``WIDTHS[NB]`` pixels
  for ``NB`` = 1..4 channel vectors); ``tile_width`` chooses among them along
  a row (the ragged end of a row costs least with a narrower tile).
  With ``pf`` = 1 each step prefetches the weight row 16 steps ahead into L1
  (``microkernel``'s ``PF``): for panels that stream from L2 (conv2d's rows
  path); the transposed kernel keeps the plain sweep, which measured no
  slower there.
- ``store_nchw``: the NCHW epilogue (in-register transpose, bias, masked stores).
- ``transpose_store``: an ``L × L`` block transposed in registers (weight repacking).

The tiles with pixels along the vector lanes (few output channels per group)
are in ``harness.kernels.pixel_tiles``.

The packing of input rows and the work memory for it are in
``harness.kernels.packing``.
- ``MAX_PIX``: the widest tile, i.e. the zero padding a packed input row needs
  on its right so a tile may read past the row end.

Numba's on-disk cache keys each function on its own source file only, while a
caller's cached machine code contains the code it took from here;
``harness.kernels.jitcache`` (imported below, before any kernel is
decorated) adds this file's digest to the cache key of every ``harness``
function, so editing it recompiles the kernels.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import literally, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Imported for its effect: the kernels' Numba caches also key on this file (see there).
from harness.kernels import jitcache  # noqa: F401

__all__ = ["MAX_PIX", "PMAX", "WIDTHS", "microkernel", "store_nchw", "tile_sweep", "tile_width",
           "transpose_store"]

MAX_PIX = 24  # widest register tile (pixels); also the right zero padding of a packed row
# Weight rows the micro-kernel prefetches ahead of its sweep (see there; 4 to 32 measured alike).
_PREFETCH_ROWS = 16


# IR helpers, also used by ``harness.kernels.pixel_tiles`` (not part of the public interface).
def _lanes_of(dt):
    return 16 if dt == types.float32 else 8


def _is_index(*tys):
    return all(isinstance(t, types.Integer) for t in tys)


def _index_args(context, builder, signature, args):
    """The intrinsic's arguments, with every integer widened to int64."""
    return [context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
            for v, t in zip(args, signature.args)]


def _is_vec_array(arr, dt):
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and arr.dtype == dt


def _data_ptr(context, builder, aty, aval):
    return cgutils.create_struct_proxy(aty)(context, builder, value=aval).data


@intrinsic
def microkernel(typingctx, tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, P, NB, PF):
    """Register-tiled sum over taps and input channels.

    For ``p < P`` pixels and ``NB`` vectors of ``L`` output channels::

        tile[(p·NB + b)·L + l] = Σ_t Σ_ci xa[xbase + toffx[t] + ci·xci + p]
                                        · wa[wbase + (toffw[t] + ci)·wld + b·L + l]

    ``P`` and ``NB`` are compile-time constants, so the ``P·NB`` accumulators
    live in registers for the whole sweep. With ``PF`` = 1 (``tile_sweep``'s ``pf``)
    each step prefetches the weight row ``_PREFETCH_ROWS`` steps ahead into L1:
    a panel of ``taps·Cig`` rows outgrows L1 (conv2d b1: 73 KB per 2-vector
    block) and streams from L2, and a narrow tile issues too few loads per step
    to hide those misses. Measured on the sweep of a 32-pixel row, panel in L2,
    one thread, same process: 12-pixel tiles 193 → 197-201 GF/s, 8-pixel tiles
    172 → 185-188. (Prefetching the input rows too, 4 channels ahead, did not
    help.) The transposed convolution's rows (16-pixel phases) ran 0.1-1.1%
    slower with it (b1, 6 runs), so it passes ``pf`` = 0.
    """
    if not all(isinstance(v, types.IntegerLiteral) for v in (P, NB, PF)):
        return None
    dt = tile.dtype
    if dt not in (types.float32, types.float64) or not all(
            _is_vec_array(a, dt) for a in (tile, xa, wa)):
        return None
    if not (_is_vec_array(toffx, types.int64) and _is_vec_array(toffw, types.int64)
            and _is_index(xbase, xci, wbase, ntaps, cig, wld)):
        return None
    npix, nvec, pf = P.literal_value, NB.literal_value, PF.literal_value
    sig = types.void(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, P, NB, PF)

    def codegen(context, builder, signature, args):
        tile_v, xa_v, xbase_v, xci_v, toffx_v, wa_v, wbase_v, toffw_v, ntaps_v, cig_v, wld_v = (
            _index_args(context, builder, signature, args)[:11])
        ety = context.get_value_type(dt)
        lanes = _lanes_of(dt)
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(ety, lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        tp, xp, wp = (_data_ptr(context, builder, t, v) for t, v in ((tile, tile_v), (xa, xa_v), (wa, wa_v)))
        txp = _data_ptr(context, builder, toffx, toffx_v)
        twp = _data_ptr(context, builder, toffw, toffw_v)
        zero = ir.Constant(vty, [ir.Constant(ety, 0.0)] * lanes)
        # Entry-block allocas: LLVM promotes them to registers (mem2reg/SROA).
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nvec)] for _ in range(npix)]
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty, vty, vty]),
            f"llvm.fma.v{lanes}{'f32' if dt == types.float32 else 'f64'}")
        splat0 = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        undef = ir.Constant(vty, ir.Undefined)
        bytep = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [bytep, i32, i32, i32]), "llvm.prefetch.p0")
        row_elems = nvec * lanes
        line_elems = 64 // (4 if dt == types.float32 else 8)
        with cgutils.for_range(builder, ntaps_v) as tloop:
            t = tloop.index
            xo = builder.add(xbase_v, builder.load(builder.gep(txp, [t])))
            wr0 = builder.load(builder.gep(twp, [t]))
            with cgutils.for_range(builder, cig_v) as cloop:
                ci = cloop.index
                wo = builder.add(wbase_v, builder.mul(builder.add(wr0, ci), wld_v))
                # a hint only: past the panel's end (the last steps) it never faults
                ahead = builder.add(wo, builder.mul(wld_v, ir.Constant(i64, _PREFETCH_ROWS)))
                for e in range(0, row_elems if pf else 0, line_elems):
                    ptr = builder.gep(wp, [builder.add(ahead, ir.Constant(i64, e))])
                    builder.call(prefetch, [builder.bitcast(ptr, bytep), ir.Constant(i32, 0), ir.Constant(i32, 3),
                                            ir.Constant(i32, 1)])
                wv = []
                for b in range(nvec):
                    ptr = builder.gep(wp, [builder.add(wo, ir.Constant(i64, b * lanes))])
                    wv.append(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=align))
                xo_ci = builder.add(xo, builder.mul(ci, xci_v))
                for p in range(npix):
                    s = builder.load(builder.gep(xp, [builder.add(xo_ci, ir.Constant(i64, p))]))
                    bv = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat0)
                    for b in range(nvec):
                        builder.store(builder.call(fma, [bv, wv[b], builder.load(accs[p][b])]), accs[p][b])
        for p in range(npix):
            for b in range(nvec):
                ptr = builder.gep(tp, [ir.Constant(i64, (p * nvec + b) * lanes)])
                builder.store(builder.load(accs[p][b]), builder.bitcast(ptr, vty.as_pointer()), align=align)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_nchw(typingctx, out, obase, plane, sw, pv, nch, bias, boff, tile, toff, tstride):
    """Store one ``L × L`` block of a tile channel-major, with the bias added.

    The block is ``tile[toff + r·tstride + l]`` (row ``r`` = pixel, lane ``l`` =
    channel). It is transposed in registers and, for ``l < nch`` and ``r < pv``,
    ``out[obase + l·plane + r·sw] = block[r, l] + bias[boff + l]``, ``sw`` in
    (1, 2). The stores are masked: no other element of ``out`` is read or
    written, so neighbouring rows owned by other threads are safe.
    """
    dt = tile.dtype
    if dt not in (types.float32, types.float64) or not all(
            _is_vec_array(a, dt) for a in (out, bias, tile)):
        return None
    if not _is_index(obase, plane, sw, pv, nch, boff, toff, tstride):
        return None
    sig = types.void(out, obase, plane, sw, pv, nch, bias, boff, tile, toff, tstride)

    def codegen(context, builder, signature, args):
        out_v, obase_v, plane_v, sw_v, pv_v, nch_v, bias_v, boff_v, tile_v, toff_v, tstride_v = (
            _index_args(context, builder, signature, args))
        ety = context.get_value_type(dt)
        lanes = _lanes_of(dt)
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(ety, lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        ivec = ir.VectorType(i32, lanes)
        op, bp, tp = (_data_ptr(context, builder, t, v) for t, v in ((out, out_v), (bias, bias_v), (tile, tile_v)))
        bvec = builder.load(builder.bitcast(builder.gep(bp, [boff_v]), vty.as_pointer()), align=align)
        rows = []
        for r in range(lanes):
            ptr = builder.gep(tp, [builder.add(toff_v, builder.mul(tstride_v, ir.Constant(i64, r)))])
            rows.append(builder.fadd(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=align), bvec))
        rows = _transpose(builder, rows, lanes)
        mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32, ir.VectorType(ir.IntType(1), lanes)]),
            f"llvm.masked.store.v{lanes}{'f32' if dt == types.float32 else 'f64'}.p0")
        i64vec = ir.VectorType(i64, lanes)
        ins = builder.insert_element(ir.Constant(i64vec, ir.Undefined), pv_v, ir.Constant(i32, 0))
        pv_splat = builder.shuffle_vector(ins, ins, ir.Constant(ivec, [0] * lanes))
        # sw == 1: lane p holds pixel p. sw == 2: even lane c holds pixel c/2 (first store)
        # or L/2 + c/2 (second store, L elements further); odd lanes are masked off.
        never = 1 << 40
        mask1 = builder.icmp_signed("<", ir.Constant(i64vec, list(range(lanes))), pv_splat)
        half = lanes // 2
        mask_lo = builder.icmp_signed("<", ir.Constant(i64vec, [c // 2 if c % 2 == 0 else never for c in range(lanes)]), pv_splat)
        mask_hi = builder.icmp_signed("<", ir.Constant(i64vec, [half + c // 2 if c % 2 == 0 else never for c in range(lanes)]), pv_splat)
        spread_lo = ir.Constant(ivec, [c // 2 for c in range(lanes)])
        spread_hi = ir.Constant(ivec, [half + c // 2 for c in range(lanes)])
        is_one = builder.icmp_signed("==", sw_v, ir.Constant(i64, 1))
        ai = ir.Constant(i32, align)
        for l in range(lanes):
            with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, l), nch_v)):
                base = builder.add(obase_v, builder.mul(plane_v, ir.Constant(i64, l)))
                ptr = builder.bitcast(builder.gep(op, [base]), vty.as_pointer())
                with builder.if_else(is_one) as (then, otherwise):
                    with then:
                        builder.call(mstore, [rows[l], ptr, ai, mask1])
                    with otherwise:
                        ptr2 = builder.bitcast(builder.gep(op, [builder.add(base, ir.Constant(i64, lanes))]), vty.as_pointer())
                        builder.call(mstore, [builder.shuffle_vector(rows[l], rows[l], spread_lo), ptr, ai, mask_lo])
                        builder.call(mstore, [builder.shuffle_vector(rows[l], rows[l], spread_hi), ptr2, ai, mask_hi])
        return context.get_dummy_value()

    return sig, codegen


def _transpose(builder, rows, lanes):
    """Transpose ``lanes`` vectors of ``lanes`` elements in registers: swap off-diagonal blocks of
    size ``lanes/2``, ..., 1."""
    ivec = ir.VectorType(ir.IntType(32), lanes)
    rows = list(rows)
    step = lanes // 2
    while step >= 1:
        for i in range(lanes):
            if i & step:
                continue
            a, b = rows[i], rows[i + step]
            ma = [c if (c & step) == 0 else lanes + c - step for c in range(lanes)]
            mb = [c + step if (c & step) == 0 else lanes + c for c in range(lanes)]
            rows[i] = builder.shuffle_vector(a, b, ir.Constant(ivec, ma))
            rows[i + step] = builder.shuffle_vector(a, b, ir.Constant(ivec, mb))
        step //= 2
    return rows


@intrinsic
def transpose_store(typingctx, src, soff, sstride, dst, doffs, ncols):
    """``dst[doffs[c] + r] = src[soff + r·sstride + c]`` for ``r < L, c < ncols``: an ``L × L`` block
    (all ``L`` columns read) transposed in registers (the weight repacking's gather, without
    per-element loads). Returns the sum of ``v · 0`` over the block's ``L²`` elements: 0 when all are
    finite, NaN otherwise (a finiteness check at no extra pass: a separate sum of the weights cost as
    much as the transposes)."""
    dt = src.dtype
    if dt not in (types.float32, types.float64) or not all(_is_vec_array(a, dt) for a in (src, dst)):
        return None
    if not (_is_vec_array(doffs, types.int64) and _is_index(soff, sstride, ncols)):
        return None
    sig = types.float64(src, soff, sstride, dst, doffs, ncols)

    def codegen(context, builder, signature, args):
        src_v, soff_v, sstride_v, dst_v, doffs_v, ncols_v = _index_args(context, builder, signature, args)
        ety = context.get_value_type(dt)
        lanes = _lanes_of(dt)
        align = 4 if dt == types.float32 else 8
        vty = ir.VectorType(ety, lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        sp, dp, op = (_data_ptr(context, builder, t, v) for t, v in ((src, src_v), (dst, dst_v), (doffs, doffs_v)))
        rows = []
        zero = ir.Constant(vty, [0.0] * lanes)
        check = zero
        for r in range(lanes):
            off = builder.add(soff_v, builder.mul(sstride_v, ir.Constant(i64, r)))
            rows.append(builder.load(builder.bitcast(builder.gep(sp, [off]), vty.as_pointer()), align=align))
            check = builder.fadd(check, builder.fmul(rows[-1], zero))
        for c, v in enumerate(_transpose(builder, rows, lanes)):
            with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, c), ncols_v)):
                off = builder.load(builder.gep(op, [ir.Constant(i64, c)]))
                builder.store(v, builder.bitcast(builder.gep(dp, [off]), vty.as_pointer()), align=align)
        step = lanes // 2
        while step:                                     # lanes 0..step-1 += lanes step..2·step-1
            check = builder.fadd(check, builder.shuffle_vector(
                check, check, ir.Constant(ir.VectorType(i32, lanes), [(c + step) % lanes for c in range(lanes)])))
            step //= 2
        first = builder.extract_element(check, ir.Constant(i32, 0))
        return first if dt == types.float64 else builder.fpext(first, ir.DoubleType())

    return sig, codegen


# Pixels per tile the micro-kernel is compiled for, per NB = 1..4 channel vectors: the widest
# (P·NB = 24 accumulators) first, then narrower ones for the end of a row. A 32-pixel row with NB = 2
# is 12 + 12 + 8 pixels, not 12 + 12 + 12 with 4 computed and dropped (11% of the work of conv2d b1
# and conv2d_transpose b1, whose rows and phases are 32 pixels).
WIDTHS = ((), (24, 16, 8), (12, 8, 4), (8, 4), (6, 4))
PMAX = tuple(w[0] if w else 0 for w in WIDTHS)


def _step_cycles(p, nb):
    """Cycles of one micro-kernel step on a core with 2 FMA and 2 load ports: ``p·nb`` FMAs,
    ``nb + p`` loads (weight vectors, broadcast pixels), and FMA latency (4) on each accumulator."""
    return max(p * nb / 2, (nb + p) / 2, 4)


def _first_widths(span: int) -> np.ndarray:
    """``table[nb, rem]``: the width of the first tile for the last ``rem < span`` pixels of a row,
    covering them at the least cost (``_step_cycles``, plus a little per tile to prefer fewer).
    Such tiles together never cover more than ``PMAX[nb]`` pixels: one tile that wide costs less."""
    table = np.zeros((len(WIDTHS), span), dtype=np.int64)
    for nb in range(1, len(WIDTHS)):
        best = [0.0] * span
        for rem in range(1, span):
            options = [(_step_cycles(p, nb) + 0.5 + (best[rem - p] if p < rem else 0), p) for p in WIDTHS[nb]]
            best[rem], table[nb, rem] = min(options, key=lambda o: (o[0], -o[1]))
    return table


_FIRST = _first_widths(MAX_PIX)


@njit(cache=True)
def tile_width(nb, rem):
    """Pixels of the next tile (one of ``WIDTHS[nb]``) when ``rem`` pixels of the row are left.

    ``PMAX[nb]`` while at least that many are left, so tiles start at multiples of ``PMAX[nb]`` and
    the last ones stay within the next ``PMAX[nb]`` pixels. A tile may cover more than ``rem``: its
    extra pixels are computed, never stored.
    """
    if rem >= PMAX[nb]:
        return PMAX[nb]
    return _FIRST[nb, rem]


@njit(cache=True)
def tile_sweep(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, nb, npx, pf):
    """``microkernel`` for ``nb`` channel vectors × ``npx`` pixels, ``npx`` one of ``WIDTHS[nb]``; ``pf``
    (a constant at the call site: one compiled sweep per value) 1 prefetches the weights (``microkernel``'s
    ``PF``), 0 does not."""
    literally(pf)
    if nb == 1:
        if npx == 24:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 24, 1, pf)
        elif npx == 16:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 16, 1, pf)
        else:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 8, 1, pf)
    elif nb == 2:
        if npx == 12:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 12, 2, pf)
        elif npx == 8:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 8, 2, pf)
        else:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 4, 2, pf)
    elif nb == 3:
        if npx == 8:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 8, 3, pf)
        else:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 4, 3, pf)
    else:
        if npx == 6:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 6, 4, pf)
        else:
            microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 4, 4, pf)
