"""Fast 2-D transposed convolution for the ``numba`` backend (DESIGN.md §2, §3).

Definition (same as the oracle)::

    full[n, g·Cog + o, a·sh + i·dh, c·sw + j·dw] += x[n, g·Cig + ci, a, c] · w[g·Cig + ci, o, i, j]
    out = full[top : top + H_out, left : left + W_out]  (rows/cols ≥ F are 0)  + bias

Design
------
*Output-stationary, phase-decomposed direct convolution; no BLAS, no
im2col/col2im buffers.*

- **Phases.** Output row ``Y = yq·sh + py`` only receives taps ``i`` with
  ``(i·dh) mod sh == py``, from input row ``a = yq − (i·dh) div sh``; same for
  columns. So every output row is, per column phase ``px``, a stride-1
  correlation over a fixed tap list: no zero-stuffing and no wasted multiplies
  on the inserted zeros. Taps whose input row lies outside the image are dropped
  per row; only the column borders are computed against zero padding.
- **Register tiles.** A micro-kernel keeps a tile of ``P`` output pixels ×
  ``NB·L`` output channels (``L`` = 16 float32 / 8 float64 lanes, 24
  accumulator vectors of the 32 AVX-512 registers) and sweeps
  ``K = taps × Cig``: per step it loads ``NB`` weight vectors and issues
  ``P·NB`` FMAs with a broadcast input operand. It is generated as LLVM IR with
  explicit 512-bit vectors (``@intrinsic``), because Numba's auto-vectoriser
  targets 256-bit vectors on this CPU (LLVM's ``prefer-256-bit`` tuning) and
  cannot keep a 2-D accumulator tile in registers. On CPUs without AVX-512
  LLVM splits the vectors; the results are the same.
- **Memory traffic.** The input is packed lazily, row by row, into a small
  per-thread ring of ``(kh−1)·dh/sh + 1`` rows (channel-major, zero-padded
  columns), converting float64 to the compute dtype on the way: nothing of the
  size of the input is written, and there is no column buffer
  (``N·H·W·Cog·kh·kw`` elements) at all. Weights are repacked once per call
  into contiguous per-(group, channel-block) panels, the order the
  micro-kernel streams them.
- **Epilogue.** For NCHW a tile is transposed in registers (shuffle network),
  the bias added and each channel stored with masked vector stores (stride-2
  phases interleave through the masks); NHWC stores are contiguous.
- **Parallelism.** ``prange`` over one contiguous block of output rows per
  thread: blocks write disjoint rows, so there is no reduction and no race.

Rejected after measuring: BLAS GEMM + parallel col2im (per image: x (Cig, HW)
→ cols (Cog·kh·kw, HW), L2-sized chunks). ``np.dot`` inside Numba runs at
180-240 GFLOP/s alone, but OpenBLAS' threads and Numba's OpenMP threads take
turns on the two cores and every hand-over waits for a spinning thread: the
pipeline ran 1.6-230x slower than torch (1-5x with ``OMP_WAIT_POLICY=passive``),
and calling single-threaded BLAS from ``prange`` is no better (OpenBLAS
threading is process-global). Software prefetch of the next input rows, row
tiling for weight reuse and multi-row packing measured no gain and were
dropped.

float16/bfloat16 are computed with float32 accumulation and the result is
rounded once (round to nearest even) to the case dtype; float64 is computed
in float64. Every ``njit`` uses ``cache=True``: a fresh process imports this
module in 0.2 s and its first call takes 0.3 s (cache load + Numba's thread
pool), against ~6.5 s per compute dtype to compile.

Measured (2-core AVX-512 Xeon VM, shared; float32, NCHW, float64 input as the
contract says, so the conversion is included; median of 15 calls, best of 8
rounds, torch 2.13 ``conv_transpose2d`` on float32 tensors measured
alternately in the same process). GFLOP/s = 2·N·Cin·H·W·Cog·kh·kw / time.
Torch has a much slower path when given a bias, so both are shown:

=============================  ============  ===================  ===================
(N,Cin,H,W,Cout,k,s)           numba         torch, bias          torch, no bias
=============================  ============  ===================  ===================
(8,64,32,32,32,4,2)            2.23 ms  241  2.47 ms  217  0.90x  2.45 ms  219  0.90x
(1,256,16,16,128,3,2) same     0.80 ms  190  0.92 ms  163  0.86x  0.72 ms  209  1.11x
(16,32,64,64,16,5,1) d=2       6.66 ms  252  7.45 ms  225  0.89x  5.56 ms  302  1.21x
(8,64,32,32,64,3,2) groups 8   1.41 ms   53  3.47 ms   22  0.41x  0.87 ms   86  1.69x
=============================  ============  ===================  ===================

(ratio = numba / torch; the no-bias ratio uses numba without bias too.) In a
process without Numba, torch takes 6.1-6.9 ms (~90 GFLOP/s) on the first
shape. Where the time goes, and the known weak spots: alone, the micro-kernel
reaches ~172 GFLOP/s per core with one channel vector (Cog = 16) and ~190
with two or more; stride-1 rows also compute the column borders against
zeros (11% extra work on the third shape); packing the float64 input and
storing the output take ~15% of the third shape and ~65% of the grouped one,
whose 8 output channels per group also fill only half of each vector.
Depthwise convolutions (Cig = Cog = 1) use 1/16 of each vector and are slower
than torch.

Non-finite weights: the tiles multiply the zero columns around the input by
the weights too, and ``0 · inf`` is NaN where the definition has no term at
all. So when ``w`` holds an inf or NaN (the repacking sums the weights to
find out) the call falls back to ``_scatter_exact``, a plain parallel
scatter-add that only ever touches real input pixels. Non-finite inputs need
no fallback: zero padding is never multiplied by them.

About 600 lines: the LLVM vector intrinsics, the micro-kernel, the packing
and the epilogue are one kernel; split, each part would only be read with the
others.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from harness.data import round_to_dtype

__all__ = ["conv2d_transpose"]

_DTYPES = ("float16", "bfloat16", "float32", "float64")
_MAX_PIX = 24  # widest register tile (pixels); also the right zero padding of a packed row


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
def _microkernel(typingctx, tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, P, NB):
    """Register-tiled sum over taps and input channels.

    For ``p < P`` pixels and ``NB`` vectors of ``L`` output channels::

        tile[(p·NB + b)·L + l] = Σ_t Σ_ci xa[xbase + toffx[t] + ci·xci + p]
                                        · wa[wbase + (toffw[t] + ci)·wld + b·L + l]

    ``P`` and ``NB`` are compile-time constants, so the ``P·NB`` accumulators
    live in registers for the whole sweep.
    """
    if not (isinstance(P, types.IntegerLiteral) and isinstance(NB, types.IntegerLiteral)):
        return None
    dt = tile.dtype
    if dt not in (types.float32, types.float64) or not all(
            _is_vec_array(a, dt) for a in (tile, xa, wa)):
        return None
    if not (_is_vec_array(toffx, types.int64) and _is_vec_array(toffw, types.int64)
            and _is_index(xbase, xci, wbase, ntaps, cig, wld)):
        return None
    npix, nvec = P.literal_value, NB.literal_value
    sig = types.void(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, P, NB)

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
        with cgutils.for_range(builder, ntaps_v) as tloop:
            t = tloop.index
            xo = builder.add(xbase_v, builder.load(builder.gep(txp, [t])))
            wr0 = builder.load(builder.gep(twp, [t]))
            with cgutils.for_range(builder, cig_v) as cloop:
                ci = cloop.index
                wo = builder.add(wbase_v, builder.mul(builder.add(wr0, ci), wld_v))
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
def _store_nchw(typingctx, out, obase, plane, sw, pv, nch, bias, boff, tile, toff, tstride):
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
        # Transpose by swapping off-diagonal blocks of size step = L/2, ..., 1.
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


# Pixels per tile for NB = 1..4 channel vectors (P·NB = 24 accumulators), and a
# narrower tile for the ragged end of a row.
_PMAX = (0, 24, 12, 8, 6)
_PSMALL = (0, 8, 4, 4, 4)


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
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 4, 4)
        else:
            _microkernel(tile, xa, xbase, xci, toffx, wa, wbase, toffw, ntaps, cig, wld, 6, 4)


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _pack_w(w, wp, lanes):
    """Repack ``w`` (C_in, Cog, kh, kw) into contiguous channel blocks.

    Returns the float64 sum of the weights, which is not finite if a weight is
    inf or NaN (an overflow of huge finite weights only sends the call to the
    slower exact path).

    Output channels are cut into the blocks the kernel uses (``nb`` vectors of
    ``lanes``; the last block narrower, zero-padded). Block ``(g, o0)`` of
    width ``ob`` starts at ``wp[g, o0·kh·kw·Cig]`` and holds, row
    ``(i·kw + j)·Cig + ci``, the ``ob`` weights ``w[g·Cig + ci, o0 : o0 + ob, i, j]``.
    """
    cin, cog, kh, kw = w.shape
    groups = wp.shape[0]
    cig = cin // groups
    nb_main = min(4, (cog + lanes - 1) // lanes)
    ntap = kh * kw
    nrow = ntap * cig
    wf = w.reshape(cin, cog * ntap)
    total = 0.0
    for r in prange(groups * cig):
        g = r // cig
        ci = r - g * cig
        src = wf[r]
        dst = wp[g]
        ob0 = 0
        while ob0 < cog:
            ob = min(nb_main, (cog - ob0 + lanes - 1) // lanes) * lanes
            nv = min(ob, cog - ob0)
            for t in range(ntap):
                start = ob0 * nrow + (t * cig + ci) * ob
                seg = dst[start:start + ob]
                for o in range(nv):
                    v = src[(ob0 + o) * ntap + t]
                    seg[o] = v
                    total += v
                for o in range(nv, ob):
                    seg[o] = 0
            ob0 += ob
    return total


@njit(cache=True)
def _fill_bias(out, nhwc, n, y, x_lo, x_hi, x_step, biasp, cout):
    """Output pixels that no tap reaches: just the bias."""
    if x_hi <= x_lo:
        return
    if nhwc:
        for x in range(x_lo, x_hi, x_step):
            row = out[n, y, x]
            for oc in range(cout):
                row[oc] = biasp[oc]
    else:
        for oc in range(cout):
            row = out[n, oc, y]
            bv = biasp[oc]
            for x in range(x_lo, x_hi, x_step):
                row[x] = bv


@njit(cache=True)
def _rows(lo, hi, x, wp, biasp, out, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes):
    """Compute output rows ``lo <= n·H_out + y < hi`` (one thread's share)."""
    nbatch, cin, h, wd = x.shape
    groups = wp.shape[0]
    cig = cin // groups
    cout = biasp.shape[0] - lanes
    cog = cout // groups
    if nhwc:
        hout, wout = out.shape[1], out.shape[2]
    else:
        hout, wout = out.shape[2], out.shape[3]
    fh = (h - 1) * sh + dh * (kh - 1) + 1
    fw = (wd - 1) * sw + dw * (kw - 1) + 1
    qh = ((kh - 1) * dh) // sh          # furthest row offset of a tap, in input rows
    qw = ((kw - 1) * dw) // sw          # ... and in input columns (= left zero padding)
    ring = qh + 1                       # input rows one output row can read
    wpad = 2 * qw + wd + _MAX_PIX       # packed row: qw zeros | W values | zeros
    xend = min(wout, fw - left)         # output columns >= xend are past the full output
    nb_main = min(4, (cog + lanes - 1) // lanes)
    wgroup = wp.shape[1]
    nrow = kh * kw * cig
    plane = hout * wout
    wflat = wp.reshape(wp.size)
    oflat = out.reshape(out.size)

    buf = np.zeros(ring * cin * wpad, dtype=out.dtype)   # ring of packed input rows
    tile = np.zeros(32 * 64, dtype=out.dtype)            # >= 32 rows x 64 lanes (padded reads)
    tx = np.empty(kh * kw, dtype=np.int64)               # per-tap input offset
    tw = np.empty(kh * kw, dtype=np.int64)               # per-tap weight offset
    ti = np.empty(kh, dtype=np.int64)                    # kernel rows valid for this output row
    cur_n = -1
    done = 0                                             # input rows < done are packed
    for task in range(lo, hi):
        n = task // hout
        y = task - n * hout
        if n != cur_n:
            cur_n = n
            done = 0
        yy = y + top
        if yy >= fh:
            _fill_bias(out, nhwc, n, y, 0, wout, 1, biasp, cout)
            continue
        _fill_bias(out, nhwc, n, y, max(0, xend), wout, 1, biasp, cout)
        py = yy % sh
        yq = yy // sh
        # Pack the input rows this output row reads that are not in the ring yet.
        a_lo = max(yq - qh, 0)
        a_hi = min(yq, h - 1)
        for a in range(max(done, a_lo), a_hi + 1):
            base = (a % ring) * cin * wpad + qw
            for ci in range(cin):
                rb = base + ci * wpad
                src = x[n, ci, a]
                for c in range(wd):
                    buf[rb + c] = src[c]
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
            x0 = (px - left) % sw                # first output column of this phase
            if xend <= x0:
                continue
            cnt = (xend - x0 + sw - 1) // sw     # its columns, at stride sw
            xq_lo = (x0 + left) // sw
            nt = 0
            for k in range(nti):
                i = ti[k]
                rowoff = ((yq - (i * dh) // sh) % ring) * cin * wpad
                for j in range(kw):
                    if (j * dw) % sw == px:
                        tx[nt] = rowoff - (j * dw) // sw
                        tw[nt] = (i * kw + j) * cig
                        nt += 1
            if nt == 0:
                _fill_bias(out, nhwc, n, y, x0, xend, sw, biasp, cout)
                continue
            for g in range(groups):
                ob0 = 0
                while ob0 < cog:
                    nb = min(nb_main, (cog - ob0 + lanes - 1) // lanes)
                    ob = nb * lanes
                    nvalid = min(ob, cog - ob0)
                    oc0 = g * cog + ob0
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
                            wflat, g * wgroup + ob0 * nrow, tw, nt, cig, ob, nb, small)
                        pv = min(npx, rem)
                        if nhwc:
                            o_base = ((n * hout + y) * wout + x0 + s * sw) * cout + oc0
                            for p in range(pv):
                                ob_p = o_base + p * sw * cout
                                tb = p * ob
                                for o in range(nvalid):
                                    oflat[ob_p + o] = tile[tb + o] + biasp[oc0 + o]
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
                                bv = biasp[oc0 + o]
                                ob_o = o_base + o * plane
                                for p in range(pv):
                                    oflat[ob_o + p * sw] = tile[p * ob + o] + bv
                        s += npx
                    ob0 += ob


@njit(parallel=True, cache=True)
def _scatter_exact(x, w, biasp, out, nhwc, groups, sh, sw, dh, dw, top, left):
    """The definition as a scatter-add over real input pixels only, one output
    plane per task; used when the weights hold inf or NaN."""
    nbatch, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    cig = cin // groups
    cout = cog * groups
    if nhwc:
        hout, wout = out.shape[1], out.shape[2]
    else:
        hout, wout = out.shape[2], out.shape[3]
    for task in prange(nbatch * cout):
        n = task // cout
        oc = task - n * cout
        g = oc // cog
        o = oc - g * cog
        plane = np.zeros((hout, wout), dtype=out.dtype)
        for ci in range(cig):
            for a in range(h):
                for c in range(wd):
                    xv = x[n, g * cig + ci, a, c]
                    for i in range(kh):
                        yy = a * sh + i * dh - top
                        if yy < 0 or yy >= hout:
                            continue
                        for j in range(kw):
                            xx = c * sw + j * dw - left
                            if xx >= 0 and xx < wout:
                                plane[yy, xx] += xv * w[g * cig + ci, o, i, j]
        for yy in range(hout):
            for xx in range(wout):
                if nhwc:
                    out[n, yy, xx, oc] = plane[yy, xx] + biasp[oc]
                else:
                    out[n, oc, yy, xx] = plane[yy, xx] + biasp[oc]


@njit(parallel=True, cache=True)
def _kernel(x, wp, biasp, out, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, nchunks):
    total = out.shape[0] * (out.shape[1] if nhwc else out.shape[2])
    for ch in prange(nchunks):
        _rows(ch * total // nchunks, (ch + 1) * total // nchunks,
              x, wp, biasp, out, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes)


def _pair(v, name):
    a, b = (int(v), int(v)) if np.ndim(v) == 0 else (int(t) for t in v)
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be >= 1, got {tuple(v)}")
    return a, b


def conv2d_transpose(x, w, b, *, stride, dilation, groups, crops, out_hw, layout="NCHW", dtype="float32") -> np.ndarray:
    """2-D transposed convolution, DESIGN.md §2, computed in ``dtype``.

    ``x`` (N, C_in, H, W) and ``w`` (C_in, C_out/groups, kh, kw) are canonical
    NCHW arrays (float64 holding values exact in ``dtype``; anything else is
    converted to float64 first), ``b`` is None or (C_out,). ``stride`` and
    ``dilation`` are (h, w) pairs, ``crops`` = (top, bottom, left, right): only
    top/left matter, the size is ``out_hw``. Returns (N, C_out, H_out,
    W_out) for NCHW or (N, H_out, W_out, C_out) for NHWC: float64 for
    ``dtype="float64"``, else float32 holding values rounded to ``dtype``.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    w = np.ascontiguousarray(w, dtype=np.float64)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must be 4-D, got shapes {x.shape} and {w.shape}")
    sh, sw = _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    groups = int(groups)
    nbatch, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    if groups < 1 or cin % groups or w.shape[0] != cin:
        raise ValueError(f"x has {cin} channels, w has shape {w.shape}: need w.shape[0] == C_in "
                         f"and C_in divisible by groups={groups}")
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel must be at least 1x1, got {kh}x{kw}")
    top, _, left, _ = (int(c) for c in crops)
    hout, wout = (int(v) for v in out_hw)
    if top < 0 or left < 0 or hout < 0 or wout < 0:
        raise ValueError(f"crops and out_hw must be >= 0, got {tuple(crops)} and {tuple(out_hw)}")
    cout = cog * groups
    if b is not None and np.shape(b) != (cout,):
        raise ValueError(f"bias must have shape ({cout},), got {np.shape(b)}")

    ct = np.float64 if dtype == "float64" else np.float32
    lanes = 8 if ct is np.float64 else 16
    nhwc = layout == "NHWC"
    out = np.empty((nbatch, hout, wout, cout) if nhwc else (nbatch, cout, hout, wout), ct)
    biasp = np.zeros(cout + lanes, ct)
    if b is not None:
        biasp[:cout] = np.asarray(b, dtype=np.float64)
    if out.size == 0:
        return out
    if cin == 0 or h == 0 or wd == 0 or cog == 0:
        out[...] = biasp[:cout] if nhwc else biasp[:cout, None, None]
        return out

    wp = np.empty((groups, kh * kw * (cin // groups) * (-(-cog // lanes) * lanes)), ct)
    if not np.isfinite(_pack_w(w, wp, lanes)):
        _scatter_exact(x, w, biasp, out, nhwc, groups, sh, sw, dh, dw, top, left)
    else:
        nchunks = max(1, min(nbatch * hout, numba.get_num_threads()))
        _kernel(x, wp, biasp, out, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, nchunks)
    if dtype == "float16":
        out = out.astype(np.float16).astype(np.float32)
    elif dtype == "bfloat16":
        out = round_to_dtype(out, "bfloat16").astype(np.float32)
    return out
