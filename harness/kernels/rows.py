"""Row reductions with explicit 512-bit vectors, for the Numba pooling kernels.

Each comes as ``sum_*`` and ``max_*``; ``max`` propagates NaN (a NaN among the
reduced elements gives NaN), as NumPy's ``maximum``, and its identity is −∞
(a sum's is 0).

- ``*_rows``: ``nrows`` equally spaced runs of ``ncols`` elements reduced into
  one run, ``dst[doff + c] = op_r src[soff + r·stride + c]``. Down a window's
  input rows ``stride`` is the row length; across a window's columns at
  stride 1 it is the dilation (a run per tap, shifted by one column per output).
- ``*_windows``: ``dst[doff + j] = op_{b < width} src[soff + j·step + b]``, one
  masked load and a tree per window (``width ≤ L``): across the columns of
  windows too wide for the stride-2 loops.
- ``*_narrow``: a whole output row of a plane whose padded row fits one vector
  (``left + ncols ≤ L``, and every window inside it): the window's input rows
  reduced in a register, then each window's lanes, nothing stored in between
  (a masked store read back by masked loads cannot be forwarded: b3's 7×7
  windows on 14-pixel rows took a third longer through a row buffer).

Why not plain loops: Numba's auto-vectoriser targets 256-bit vectors on this
CPU (LLVM's ``prefer-256-bit`` tuning, as ``harness.kernels.tiles`` notes) and
unrolls them 4×, so a row shorter than 32 elements (the 14-pixel rows of
``benchmarks/``'s b3, the 24-element tail of a 56-pixel row) ran scalar. Here
rows are swept in vectors of ``L`` lanes (``LANES``: 16 float32, 8 float64),
the last one masked: no element outside the runs is read or written.

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

__all__ = ["LANES", "max_narrow", "max_rows", "max_windows", "sum_narrow", "sum_rows", "sum_windows"]

#: Vector lanes per compute dtype (the widest window ``*_windows`` takes, the widest padded row of ``*_narrow``).
LANES = {"float32": 16, "float64": 8}

_I64, _I32 = ir.IntType(64), ir.IntType(32)


class _Vectors:
    """The IR pieces every reduction uses, for one dtype and kind."""

    def __init__(self, context, builder, dt, kind):
        self.b = builder
        self.kind = kind
        f32 = dt == types.float32
        self.lanes = 16 if f32 else 8
        self.align = 4 if f32 else 8
        self.ety = context.get_value_type(dt)
        self.vty = ir.VectorType(self.ety, self.lanes)
        mty = ir.VectorType(ir.IntType(1), self.lanes)
        suffix = f"v{self.lanes}{'f32' if f32 else 'f64'}.p0"
        self.mload = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(self.vty, [self.vty.as_pointer(), _I32, mty, self.vty]),
            f"llvm.masked.load.{suffix}")
        self.mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [self.vty, self.vty.as_pointer(), _I32, mty]),
            f"llvm.masked.store.{suffix}")
        self.identity = ir.Constant(self.vty, [ir.Constant(self.ety, 0.0 if kind == "sum" else float("-inf"))]
                                    * self.lanes)
        self.mty = ir.VectorType(ir.IntType(1), self.lanes)

    def lanes_in(self, lo, hi):
        """The mask of lanes ``lo <= l < hi``, for ``0 <= lo <= hi <= L`` (every caller's case): the bits
        ``(2^(hi − lo) − 1) << lo`` of an integer as a mask register (a shift and a move, where lane-number
        compares took two broadcasts, two compares and a merge)."""
        b = self.b
        one = ir.Constant(_I64, 1)
        bits = b.shl(b.sub(b.shl(one, b.sub(hi, lo)), one), lo)
        return b.bitcast(b.trunc(bits, ir.IntType(self.lanes)), self.mty)

    def load(self, ptr, mask=None):
        """A vector from ``ptr``; with ``mask``, the identity in the lanes left out (which are never read)."""
        ptr = self.b.bitcast(ptr, self.vty.as_pointer())
        if mask is None:
            return self.b.load(ptr, align=self.align)
        return self.b.call(self.mload, [ptr, ir.Constant(_I32, self.align), mask, self.identity])

    def store(self, value, ptr, mask=None):
        ptr = self.b.bitcast(ptr, self.vty.as_pointer())
        if mask is None:
            self.b.store(value, ptr, align=self.align)
        else:
            self.b.call(self.mstore, [value, ptr, ir.Constant(_I32, self.align), mask])

    def combine(self, a, v):
        if self.kind == "sum":
            return self.b.fadd(a, v)
        # v wins if it is larger or NaN; a NaN accumulator never loses (both comparisons are false)
        take = self.b.or_(self.b.fcmp_ordered(">", v, a), self.b.fcmp_unordered("uno", v, v))
        return self.b.select(take, v, a)

    def tree(self, v):
        """The reduction of all lanes of ``v``, as a scalar: log2(L) steps, each on half the lanes of the
        last (256-, 128-bit halves: shorter instructions than rotating the whole vector)."""
        half = self.lanes // 2
        while half:
            lo = self.b.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, half), list(range(half))))
            hi = self.b.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, half), list(range(half, 2 * half))))
            v = self.combine(lo, hi)
            half //= 2
        return self.b.extract_element(v, ir.Constant(_I32, 0))

    def down(self, sp, base, stride, nrows, mask, acc, other):
        """The reduction of the ``nrows`` vectors at ``sp[base + r·stride]`` (the identity if none), in two
        accumulators (alternate rows: two dependency chains, not one)."""
        b = self.b
        b.store(self.identity, acc)
        b.store(self.identity, other)
        two = ir.Constant(_I64, 2)
        pairs = b.sdiv(nrows, two)
        with cgutils.for_range(b, pairs) as loop:
            off = b.add(base, b.mul(b.mul(loop.index, two), stride))
            b.store(self.combine(b.load(acc), self.load(b.gep(sp, [off]), mask)), acc)
            off = b.add(off, stride)
            b.store(self.combine(b.load(other), self.load(b.gep(sp, [off]), mask)), other)
        last = b.mul(pairs, two)
        with b.if_then(b.icmp_signed("<", last, nrows)):
            off = b.add(base, b.mul(last, stride))
            b.store(self.combine(b.load(acc), self.load(b.gep(sp, [off]), mask)), acc)
        return self.combine(b.load(acc), b.load(other))


def _typed(dt, arrays, ints):
    return (dt in (types.float32, types.float64)
            and all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == dt for a in arrays)
            and all(isinstance(v, types.Integer) for v in ints))


def _int_args(context, builder, signature, args):
    return [context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
            for v, t in zip(args, signature.args)]


def _data(context, builder, aty, aval):
    return cgutils.create_struct_proxy(aty)(context, builder, value=aval).data


def _rows_intrinsic(kind):
    def typer(typingctx, src, soff, stride, nrows, dst, doff, ncols):
        dt = getattr(src, "dtype", None)
        if not _typed(dt, (src, dst), (soff, stride, nrows, doff, ncols)):
            return None
        sig = types.void(src, soff, stride, nrows, dst, doff, ncols)

        def codegen(context, builder, signature, args):
            src_v, soff_v, stride_v, nrows_v, dst_v, doff_v, ncols_v = _int_args(context, builder, signature, args)
            v = _Vectors(context, builder, dt, kind)
            sp, dp = _data(context, builder, src, src_v), _data(context, builder, dst, dst_v)
            acc, other = cgutils.alloca_once(builder, v.vty), cgutils.alloca_once(builder, v.vty)  # registers

            def chunk(col, mask):
                total = v.down(sp, builder.add(soff_v, col), stride_v, nrows_v, mask, acc, other)
                v.store(total, builder.gep(dp, [builder.add(doff_v, col)]), mask)

            lanes = ir.Constant(_I64, v.lanes)
            full = builder.sdiv(ncols_v, lanes)
            with cgutils.for_range(builder, full) as loop:
                chunk(builder.mul(loop.index, lanes), None)
            done = builder.mul(full, lanes)
            with builder.if_then(builder.icmp_signed("<", done, ncols_v)):
                chunk(done, v.lanes_in(ir.Constant(_I64, 0), builder.sub(ncols_v, done)))
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = f"{kind}_rows"
    return intrinsic(typer)


def _windows_intrinsic(kind):
    def typer(typingctx, src, soff, step, width, dst, doff, count):
        dt = getattr(src, "dtype", None)
        if not _typed(dt, (src, dst), (soff, step, width, doff, count)):
            return None
        sig = types.void(src, soff, step, width, dst, doff, count)

        def codegen(context, builder, signature, args):
            src_v, soff_v, step_v, width_v, dst_v, doff_v, count_v = _int_args(context, builder, signature, args)
            v = _Vectors(context, builder, dt, kind)
            sp, dp = _data(context, builder, src, src_v), _data(context, builder, dst, dst_v)
            mask = v.lanes_in(ir.Constant(_I64, 0), width_v)
            with cgutils.for_range(builder, count_v) as loop:
                j = loop.index
                window = v.load(builder.gep(sp, [builder.add(soff_v, builder.mul(j, step_v))]), mask)
                builder.store(v.tree(window), builder.gep(dp, [builder.add(doff_v, j)]))
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = f"{kind}_windows"
    return intrinsic(typer)


def _narrow_intrinsic(kind):
    def typer(typingctx, src, soff, stride, nrows, left, ncols, step, width, count, dst, doff, scale, scoff):
        dt = getattr(src, "dtype", None)
        if not _typed(dt, (src, dst, scale), (soff, stride, nrows, left, ncols, step, width, count, doff, scoff)):
            return None
        sig = types.void(src, soff, stride, nrows, left, ncols, step, width, count, dst, doff, scale, scoff)

        def codegen(context, builder, signature, args):
            (src_v, soff_v, stride_v, nrows_v, left_v, ncols_v, step_v, width_v, count_v, dst_v, doff_v, scale_v,
             scoff_v) = _int_args(context, builder, signature, args)
            v = _Vectors(context, builder, dt, kind)
            sp, dp = _data(context, builder, src, src_v), _data(context, builder, dst, dst_v)
            cp = _data(context, builder, scale, scale_v)
            acc, other = cgutils.alloca_once(builder, v.vty), cgutils.alloca_once(builder, v.vty)
            # Lane l holds padded column l (input column l − left): the loads start ``left`` elements before
            # each row, those lanes masked off (never read), the identity there and right of the row.
            row = v.lanes_in(left_v, builder.add(left_v, ncols_v))
            padded = v.down(sp, builder.sub(soff_v, left_v), stride_v, nrows_v, row, acc, other)
            with cgutils.for_range(builder, count_v) as loop:
                j = loop.index
                first = builder.mul(j, step_v)
                window = builder.select(v.lanes_in(first, builder.add(first, width_v)), padded, v.identity)
                value = v.tree(window)
                if kind == "sum":
                    value = builder.fmul(value, builder.load(builder.gep(cp, [builder.add(scoff_v, j)])))
                builder.store(value, builder.gep(dp, [builder.add(doff_v, j)]))
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = f"{kind}_narrow"
    return intrinsic(typer)


sum_rows = _rows_intrinsic("sum")
sum_rows.__doc__ = "dst[doff + c] = Σ_{r < nrows} src[soff + r·stride + c] for c < ncols."
max_rows = _rows_intrinsic("max")
max_rows.__doc__ = "dst[doff + c] = max_{r < nrows} src[soff + r·stride + c] for c < ncols; NaN propagates."
sum_windows = _windows_intrinsic("sum")
sum_windows.__doc__ = "dst[doff + j] = Σ_{b < width} src[soff + j·step + b] for j < count (width ≤ L)."
max_windows = _windows_intrinsic("max")
max_windows.__doc__ = ("dst[doff + j] = max_{b < width} src[soff + j·step + b] for j < count (width ≤ L); NaN "
                       "propagates.")
sum_narrow = _narrow_intrinsic("sum")
sum_narrow.__doc__ = """With ``P[p]`` = Σ_{r < nrows} src[soff + r·stride + p − left] for left ≤ p < left + ncols,
else 0 (``left + ncols ≤ L``): dst[doff + j] = scale[scoff + j] · Σ_{j·step ≤ p < j·step + width} P[p] for
j < count (every window inside the ``L`` lanes: ``(count − 1)·step + width ≤ L``)."""
max_narrow = _narrow_intrinsic("max")
max_narrow.__doc__ = """``sum_narrow`` with max for Σ, −∞ for 0, and no scale (``scale`` is not read); NaN propagates."""
