"""Packed inputs for the Numba convolution kernels: one input row, and the memory it goes to.

- ``pack_row``: one input row converted to the compute dtype and
  phase-packed for a stride (used by every conv2d path). Stride 2 splits a
  row's even and odd columns with vector shuffles (``_deinterleave_vectors``)
  where both rows are contiguous: conv2d b2's im2col 0.046 → 0.034 ms.
- ``scratch``: work memory reused from call to call.

Like ``harness.kernels.tiles``, this file is part of the kernels' cache key
(``harness.kernels.jitcache``): ``pack_row`` is inlined into its callers.
"""

from __future__ import annotations

import threading

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# Imported for its effect: the kernels' Numba caches also key on this file (see there).
from harness.kernels import jitcache  # noqa: F401

__all__ = ["pack_row", "scratch"]


@njit(cache=True, inline="always")   # called per row: the call itself cost as much as the copy
def pack_row(src, dst, base, left, sw, seg):
    """Copy input row ``src`` into ``dst`` (converting to its dtype), phase-packed for stride ``sw``.

    Padded column ``c + left`` goes to phase ``(c + left) mod sw``, position
    ``(c + left) div sw``, phase ``p`` starting at ``dst[base + p·seg]``: a
    strided convolution's taps then read consecutive positions. Positions of
    padding columns are not written (the caller keeps them zero).
    """
    wd = src.shape[0]
    if sw == 1:
        d = dst[base + left:base + left + wd]
        for c in range(wd):
            d[c] = src[c]
    elif sw == 2:
        e = left % 2
        # column 2k -> phase e, position k + left div 2; column 2k+1 -> the other phase
        _deinterleave(src, dst, base + e * seg + left // 2, base + (1 - e) * seg + (left + 1) // 2)
    else:
        # per phase, every sw-th input column to consecutive positions (no division per element)
        for ph in range(sw):
            c0 = (ph - left) % sw
            d = dst[base + ph * seg + (c0 + left) // sw:]
            for k in range((wd - c0 + sw - 1) // sw):
                d[k] = src[c0 + k * sw]


def _deinterleave(src, dst, de, do):
    """``dst[de + k] = src[2k]``, ``dst[do + k] = src[2k + 1]`` for every ``k`` the row has."""


@overload(_deinterleave, inline="always")
def _deinterleave_impl(src, dst, de, do):
    if _vector_rows(src, dst):
        def impl(src, dst, de, do):
            _deinterleave_vectors(src, dst, de, do)
        return impl

    def loop(src, dst, de, do):
        # even and odd columns in one loop with a constant stride: LLVM vectorises it (with checks)
        wd = src.shape[0]
        for k in range(wd // 2):
            dst[de + k] = src[2 * k]
            dst[do + k] = src[2 * k + 1]
        if wd % 2:
            dst[de + wd // 2] = src[wd - 1]
    return loop


def _vector_rows(src, dst):
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
               and a.dtype in (types.float32, types.float64) for a in (src, dst))


@intrinsic
def _deinterleave_vectors(typingctx, src, dst, de, do):
    """``_deinterleave`` a vector at a time: a masked load of ``L`` columns, its even and odd lanes
    gathered by two shuffles, two masked stores of ``L/2``. A stride-2 row of b2 (16 columns) is one
    step; the loop LLVM made of the scalar version (alias checks, a remainder) took 2/3 of b2's im2col."""
    if not (_vector_rows(src, dst) and all(isinstance(t, types.Integer) for t in (de, do))):
        return None
    sig = types.void(src, dst, de, do)

    def codegen(context, builder, signature, args):
        src_v, dst_v = args[0], args[1]
        de_v, do_v = (context.cast(builder, v, t, types.int64) for v, t in zip(args[2:], signature.args[2:]))
        sty, dty = context.get_value_type(src.dtype), context.get_value_type(dst.dtype)
        lanes = 16 if src.dtype == types.float32 else 8
        half = lanes // 2
        i64, i32 = ir.IntType(64), ir.IntType(32)
        svec, dvec = ir.VectorType(sty, lanes), ir.VectorType(dty, lanes)
        mty = ir.VectorType(ir.IntType(1), lanes)
        sproxy = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=src_v)
        sp = sproxy.data
        dp = cgutils.create_struct_proxy(signature.args[1])(context, builder, value=dst_v).data
        wd = builder.extract_value(sproxy.shape, 0)
        mload = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(svec, [svec.as_pointer(), i32, mty, svec]),
            f"llvm.masked.load.v{lanes}{'f32' if src.dtype == types.float32 else 'f64'}.p0")
        mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [dvec, dvec.as_pointer(), i32, mty]),
            f"llvm.masked.store.v{lanes}{'f32' if dst.dtype == types.float32 else 'f64'}.p0")
        i64vec = ir.VectorType(i64, lanes)
        idx = ir.Constant(i64vec, list(range(lanes)))
        evens = ir.Constant(ir.VectorType(i32, lanes), [2 * k for k in range(half)] + [0] * half)
        odds = ir.Constant(ir.VectorType(i32, lanes), [2 * k + 1 for k in range(half)] + [1] * half)
        undef = ir.Constant(svec, ir.Undefined)

        def splat(v):
            ins = builder.insert_element(ir.Constant(i64vec, ir.Undefined), v, ir.Constant(i32, 0))
            return builder.shuffle_vector(ins, ins, ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

        nchunks = builder.sdiv(builder.add(wd, ir.Constant(i64, lanes - 1)), ir.Constant(i64, lanes))
        with cgutils.for_range(builder, nchunks) as loop:
            c0 = builder.mul(loop.index, ir.Constant(i64, lanes))
            n = builder.sub(wd, c0)                              # columns left (masks: lanes below it)
            v = builder.call(mload, [builder.bitcast(builder.gep(sp, [c0]), svec.as_pointer()),
                                     ir.Constant(i32, 1), builder.icmp_signed("<", idx, splat(n)), undef])
            if sty != dty:
                v = builder.fpext(v, dvec) if src.dtype == types.float32 else builder.fptrunc(v, dvec)
            h0 = builder.sdiv(c0, ir.Constant(i64, 2))
            for sel, off, first in ((evens, de_v, 0), (odds, do_v, 1)):
                # lane k holds column c0 + 2k + first: stored while that column exists and k < L/2
                cols = builder.add(builder.mul(idx, ir.Constant(i64vec, [2] * lanes)),
                                   ir.Constant(i64vec, [first] * lanes))
                mask = builder.and_(builder.icmp_signed("<", cols, splat(n)),
                                    builder.icmp_signed("<", idx, ir.Constant(i64vec, [half] * lanes)))
                ptr = builder.gep(dp, [builder.add(off, h0)])
                builder.call(mstore, [builder.shuffle_vector(v, v, sel), builder.bitcast(ptr, dvec.as_pointer()),
                                      ir.Constant(i32, 1), mask])
        return context.get_dummy_value()

    return sig, codegen


_SCRATCH = threading.local()


def scratch(n, dtype) -> np.ndarray:
    """A 1-D work array of ``n`` elements, reused from call to call (per Python thread).

    Contents are undefined: the kernel zeroes what it needs. It starts on a
    64-byte boundary (a cache line, one 512-bit vector). Allocating
    ~1 MB per Numba thread and call costs page faults and zeroing by the OS
    each time (glibc hands the worker threads' large blocks back to the
    system): 15-20% of a small convolution.
    """
    arrays = _SCRATCH.__dict__.setdefault("arrays", {})
    key = np.dtype(dtype).str
    a = arrays.get(key)
    if a is None or a.size < n:
        a = arrays[key] = np.empty(n + 64, dtype)
    skip = (-a.ctypes.data % 64) // a.itemsize         # start on a 64-byte boundary
    return a[skip:skip + n]
