"""Row reductions with explicit 512-bit vectors, for the Numba pooling kernels.

``sum_rows`` and ``max_rows`` reduce ``nrows`` equally spaced runs of ``ncols``
elements into one run::

    dst[doff + c] = op over r < nrows of src[soff + r·stride + c]     (c < ncols)

``max_rows`` propagates NaN (a NaN in any run gives NaN), as NumPy's
``maximum``. Down a window's input rows ``stride`` is the row length; across a
window's columns at stride 1 it is the dilation (a run per tap, shifted by one
column per output).

Why not a plain loop: Numba's auto-vectoriser targets 256-bit vectors on this
CPU (LLVM's ``prefer-256-bit`` tuning, as ``harness.kernels.tiles`` notes) and
unrolls them 4×, so a row shorter than 32 elements (the 14-pixel rows of
``benchmarks/``'s b3, the 24-element tail of a 56-pixel row) ran scalar. Here
each run is swept in vectors of ``L`` lanes (16 float32, 8 float64), the last
one masked: no element outside the runs is read or written.

Like ``harness.kernels.tiles``, this file is part of the kernels' cache key
(``harness.kernels.jitcache``): the intrinsics are compiled into their callers.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# Imported for its effect: the kernels' Numba caches also key on this file (see there).
from harness.kernels import jitcache  # noqa: F401

__all__ = ["LANES", "max_rows", "max_windows", "sum_rows", "sum_windows"]

#: Vector lanes per compute dtype (the widest window ``*_windows`` takes).
LANES = {"float32": 16, "float64": 8}


def _reduction(kind):
    def typer(typingctx, src, soff, stride, nrows, dst, doff, ncols):
        dt = src.dtype if isinstance(src, types.Array) else None
        if dt not in (types.float32, types.float64):
            return None
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == dt
                   for a in (src, dst)):
            return None
        if not all(isinstance(v, types.Integer) for v in (soff, stride, nrows, doff, ncols)):
            return None
        sig = types.void(src, soff, stride, nrows, dst, doff, ncols)

        def codegen(context, builder, signature, args):
            args = [context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
                    for v, t in zip(args, signature.args)]
            src_v, soff_v, stride_v, nrows_v, dst_v, doff_v, ncols_v = args
            f32 = dt == types.float32
            lanes = 16 if f32 else 8
            align = 4 if f32 else 8
            ety = context.get_value_type(dt)
            vty = ir.VectorType(ety, lanes)
            i64, i32 = ir.IntType(64), ir.IntType(32)
            mty = ir.VectorType(ir.IntType(1), lanes)
            sp = cgutils.create_struct_proxy(src)(context, builder, value=src_v).data
            dp = cgutils.create_struct_proxy(dst)(context, builder, value=dst_v).data
            suffix = f"v{lanes}{'f32' if f32 else 'f64'}.p0"
            mload = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty.as_pointer(), i32, mty, vty]), f"llvm.masked.load.{suffix}")
            mstore = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32, mty]),
                f"llvm.masked.store.{suffix}")
            undef = ir.Constant(vty, ir.Undefined)
            acc = cgutils.alloca_once(builder, vty)        # entry block: promoted to a register

            def load(ptr, mask):
                ptr = builder.bitcast(ptr, vty.as_pointer())
                if mask is None:
                    return builder.load(ptr, align=align)
                return builder.call(mload, [ptr, ir.Constant(i32, align), mask, undef])

            def combine(a, v):
                if kind == "sum":
                    return builder.fadd(a, v)
                # v wins if it is larger or NaN; a NaN accumulator never loses (both comparisons false)
                take = builder.or_(builder.fcmp_ordered(">", v, a), builder.fcmp_unordered("uno", v, v))
                return builder.select(take, v, a)

            identity = ir.Constant(vty, [ir.Constant(ety, 0.0 if kind == "sum" else float("-inf"))] * lanes)
            other = cgutils.alloca_once(builder, vty)
            one, two = ir.Constant(i64, 1), ir.Constant(i64, 2)

            def chunk(col, mask):
                # Two accumulators (rows 1, 3, 5, … and 2, 4, …): two dependency chains, not one.
                base = builder.add(soff_v, col)
                builder.store(load(builder.gep(sp, [base]), mask), acc)
                builder.store(identity, other)
                pairs = builder.sdiv(builder.sub(nrows_v, one), two)
                with cgutils.for_range(builder, pairs) as loop:
                    r = builder.add(builder.mul(loop.index, two), one)
                    off = builder.add(base, builder.mul(r, stride_v))
                    builder.store(combine(builder.load(acc), load(builder.gep(sp, [off]), mask)), acc)
                    off = builder.add(off, stride_v)
                    builder.store(combine(builder.load(other), load(builder.gep(sp, [off]), mask)), other)
                last = builder.add(builder.mul(pairs, two), one)
                with builder.if_then(builder.icmp_signed("<", last, nrows_v)):
                    off = builder.add(base, builder.mul(last, stride_v))
                    builder.store(combine(builder.load(acc), load(builder.gep(sp, [off]), mask)), acc)
                total = combine(builder.load(acc), builder.load(other))
                ptr = builder.bitcast(builder.gep(dp, [builder.add(doff_v, col)]), vty.as_pointer())
                if mask is None:
                    builder.store(total, ptr, align=align)
                else:
                    builder.call(mstore, [total, ptr, ir.Constant(i32, align), mask])

            full = builder.sdiv(ncols_v, ir.Constant(i64, lanes))
            with cgutils.for_range(builder, full) as loop:
                chunk(builder.mul(loop.index, ir.Constant(i64, lanes)), None)
            done = builder.mul(full, ir.Constant(i64, lanes))
            rest = builder.sub(ncols_v, done)
            with builder.if_then(builder.icmp_signed(">", rest, ir.Constant(i64, 0))):
                rest_splat = builder.insert_element(ir.Constant(ir.VectorType(i64, lanes), ir.Undefined), rest,
                                                    ir.Constant(i32, 0))
                rest_splat = builder.shuffle_vector(rest_splat, rest_splat, ir.Constant(ir.VectorType(i32, lanes),
                                                                                         [0] * lanes))
                mask = builder.icmp_signed("<", ir.Constant(ir.VectorType(i64, lanes), list(range(lanes))), rest_splat)
                chunk(done, mask)
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = f"{kind}_rows"
    return intrinsic(typer)



def _windows(kind):
    def typer(typingctx, src, soff, step, width, dst, doff, count):
        dt = src.dtype if isinstance(src, types.Array) else None
        if dt not in (types.float32, types.float64):
            return None
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == dt
                   for a in (src, dst)):
            return None
        if not all(isinstance(v, types.Integer) for v in (soff, step, width, doff, count)):
            return None
        sig = types.void(src, soff, step, width, dst, doff, count)

        def codegen(context, builder, signature, args):
            args = [context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
                    for v, t in zip(args, signature.args)]
            src_v, soff_v, step_v, width_v, dst_v, doff_v, count_v = args
            f32 = dt == types.float32
            lanes = 16 if f32 else 8
            align = 4 if f32 else 8
            ety = context.get_value_type(dt)
            vty = ir.VectorType(ety, lanes)
            i64, i32 = ir.IntType(64), ir.IntType(32)
            mty = ir.VectorType(ir.IntType(1), lanes)
            sp = cgutils.create_struct_proxy(src)(context, builder, value=src_v).data
            dp = cgutils.create_struct_proxy(dst)(context, builder, value=dst_v).data
            mload = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty.as_pointer(), i32, mty, vty]),
                f"llvm.masked.load.v{lanes}{'f32' if f32 else 'f64'}.p0")
            identity = ir.Constant(vty, [ir.Constant(ety, 0.0 if kind == "sum" else float("-inf"))] * lanes)
            splat = builder.insert_element(ir.Constant(ir.VectorType(i64, lanes), ir.Undefined), width_v,
                                           ir.Constant(i32, 0))
            splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))
            mask = builder.icmp_signed("<", ir.Constant(ir.VectorType(i64, lanes), list(range(lanes))), splat)

            def combine(a, v):
                if kind == "sum":
                    return builder.fadd(a, v)
                take = builder.or_(builder.fcmp_ordered(">", v, a), builder.fcmp_unordered("uno", v, v))
                return builder.select(take, v, a)

            with cgutils.for_range(builder, count_v) as loop:
                j = loop.index
                ptr = builder.gep(sp, [builder.add(soff_v, builder.mul(j, step_v))])
                v = builder.call(mload, [builder.bitcast(ptr, vty.as_pointer()), ir.Constant(i32, align), mask,
                                         identity])
                half = lanes // 2
                while half:         # a tree: log2(L) steps, the windows of a row independent of each other
                    shifted = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, lanes),
                                                                       [(k + half) % lanes for k in range(lanes)]))
                    v = combine(v, shifted)
                    half //= 2
                builder.store(builder.extract_element(v, ir.Constant(i32, 0)), builder.gep(dp, [builder.add(doff_v, j)]))
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = f"{kind}_windows"
    return intrinsic(typer)


sum_rows = _reduction("sum")
sum_rows.__doc__ = "dst[doff + c] = Σ_r src[soff + r·stride + c] for c < ncols (nrows ≥ 1)."
max_rows = _reduction("max")
max_rows.__doc__ = "dst[doff + c] = max_r src[soff + r·stride + c] for c < ncols (nrows ≥ 1); NaN propagates."
sum_windows = _windows("sum")
sum_windows.__doc__ = ("dst[doff + j] = Σ_{b < width} src[soff + j·step + b] for j < count (1 ≤ width ≤ L): one masked load "
                       "and a tree per window.")
max_windows = _windows("max")
max_windows.__doc__ = ("dst[doff + j] = max_{b < width} src[soff + j·step + b] for j < count (1 ≤ width ≤ L); NaN "
                       "propagates.")
