"""Fast 2-D max pooling for the ``numba`` backend (DESIGN.md §3, §8).

Definition (Note [Max pooling] in ``semantics.py``; the same as the oracle)::

    out[n, c, i, j] = max x[n, c, i·sh − top + a·dh, j·sw − left + b·dw]

over the taps ``a < kh``, ``b < kw`` inside the input: padding is −∞ and never
wins; a window of padding only is −∞. NaN propagates: a window holding a NaN is
NaN (as NumPy's ``maximum``, which the oracle uses).

Design
------
*Separable, one output row at a time.* A window's taps are rows × columns and
padding never wins, so its maximum is the maximum across its columns of the
maxima down its rows. For output row ``i`` of a plane the thread reduces the
window's input rows inside the input (``rows.max_rows``: explicit 512-bit
vectors, the row's tail masked) into a row buffer whose cells left and right
of the input are −∞ (written once per thread), then reduces ``kw`` cells of
that buffer per output: no bounds checks. Across the columns: stride 1, one
vector run per tap (``max_rows`` again, shifted by the dilation); windows of
4 to ``L`` columns, one masked vector and a tree per window
(``max_windows``); 2- and 3-wide windows at stride 2, loops with constant
strides; the rest (dilation, strides above the kernel, windows wider than a
vector) a generic loop. A padded row that fits one vector (``left + W ≤ L``:
b3's 14-pixel rows) is reduced down and across in registers
(``max_narrow``), with no row buffer in between. The loop body is written out
in ``_rows`` with array offsets: a helper function per output row (inlined by
Numba or not) or a view per row measured twice the time of b3's whole rows.

The work is ``N·C·H_out`` output rows, cut into chunks claimed by the threads
one at a time (``harness.kernels.tasks``); the team is ``fit_threads``'s.
NHWC output (the input is always the canonical NCHW array) is the NCHW result
transposed: a layout conformance cases use, not a fast path.

Every dtype is exact: the maximum of values representable in the case dtype
is one of them, so float16/bfloat16 are pooled as float32 (they are exact
there) with nothing to round, float64 in float64. ``x`` arrives in the compute
dtype (the numba backend converts it before the timed call, as every adapter
converts its operands).

Measured (benchmarks/max_pool2d.yaml, float32 NCHW; each library in its own
process, the input converted from float64 before every call as the backend's
program does: numba by ``harness.kernels.convert``, torch by
``.to(torch.float32)``; the call alone timed, median of 40 after 5 warm-ups;
torch 2.13 ``torch.nn.functional.max_pool2d``; 2-core AVX-512 VM shared with
other jobs, a quiet stretch at load 0.7):

=====================  ==================  ==================  =====
shape                  1 thread: numba,    2 threads: numba,   ratio
                       torch (ms)          torch (ms)          (2)
=====================  ==================  ==================  =====
b1 (8,64,56,56) k2 s2  0.534, 8.26         0.429, 4.00         0.11
b2 k3 s2 valid         0.568, 11.04        0.398, 5.56         0.07
b3 (16,256,14,14) k7   0.191, 1.51         0.143, 0.84         0.17
=====================  ==================  ==================  =====

``conform bench`` (two runs, load 0.9-1.0): numba 0.40, 0.38, 0.16 and
0.36, 0.43, 0.15 ms against torch 4.30, 5.61, 0.79 and 4.08, 5.60, 0.89.
On one thread ``x.max()`` reads b1's input (6.4 MB, just written) in
0.25 ms, b3's (3.2 MB) in 0.145: b3 is near that floor, b1 and b2 (the
stride-2 loops across the columns) at about twice it.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from harness.kernels.convert import compute_dtype
from harness.kernels.rows import max_narrow, max_rows, max_windows
from harness.kernels.tasks import chunk_count, claim
from harness.kernels.threads import fit_threads

__all__ = ["max_pool2d"]


@njit(cache=True, inline="always")
def _mx(m, v):
    """max(m, v), NaN if either is: the comparison is false for NaN, so a NaN ``m`` stays and a NaN ``v`` wins."""
    return v if (v > m) | (v != v) else m


@njit(cache=True)
def _rows(lo, hi, x, out, kh, kw, sh, sw, dh, dw, top, left, buf):
    """Output rows ``lo <= (n·C + c)·H_out + i < hi``; ``buf`` is −∞ outside the input's columns.

    One loop body, no helper functions: a call per output row (inlined by Numba or not) measured twice
    the time of the whole row on b3 (7×7 windows over 14-pixel rows). Array offsets, not views or
    arrays chosen per row, for the same reason (each costs reference counting: two atomic updates per
    row)."""
    h, w = x.shape[2], x.shape[3]
    hout, wout = out.shape[2], out.shape[3]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    # across a window's columns: 0 one run per tap (stride 1), 1 one masked vector per window, 2-3 loops
    # with constant strides, 4 the generic loop; 5: the padded row fits one vector (rows.max_narrow)
    lanes = 64 // buf.itemsize
    if dw == 1 and buf.shape[0] <= lanes:
        across = 5
    elif sw == 1:
        across = 0
    elif dw == 1 and kw > 3 and kw <= lanes:
        across = 1
    elif dw == 1 and sw == 2 and kw == 2:
        across = 2
    elif dw == 1 and sw == 2 and kw == 3:
        across = 3
    else:
        across = 4
    plane = lo // hout
    i = lo - plane * hout
    for task in range(lo, hi):
        r0 = i * sh - top
        a0 = 0 if r0 >= 0 else (dh - 1 - r0) // dh            # the window's first row inside the input
        a1 = min(kh, (h - 1 - r0) // dh + 1) if r0 < h else 0  # past its last
        o = task * wout
        if across == 5:
            max_narrow(xf, plane * h * w + (r0 + a0 * dh) * w, dh * w, max(0, a1 - a0), left, w, sw, kw, wout, of,
                       o, of, 0)
        else:
            # down: buf[left:left + W] = the max of the window's rows inside the input (−∞: none)
            if a1 > a0:
                max_rows(xf, plane * h * w + (r0 + a0 * dh) * w, dh * w, a1 - a0, buf, left, w)
            else:
                buf[left:left + w] = -np.inf
            # across: output j of the row (of[o + j]) = the max of buf[j·sw + b·dw], b < kw
            if across == 0:
                max_rows(buf, 0, dw, kw, of, o, wout)
            elif across == 1:
                max_windows(buf, 0, sw, kw, of, o, wout)
            elif across == 2:
                for j in range(wout):
                    of[o + j] = _mx(buf[2 * j], buf[2 * j + 1])
            elif across == 3:
                for j in range(wout):
                    of[o + j] = _mx(_mx(buf[2 * j], buf[2 * j + 1]), buf[2 * j + 2])
            else:
                for j in range(wout):
                    m = buf[j * sw]
                    for b in range(1, kw):
                        m = _mx(m, buf[j * sw + b * dw])
                    of[o + j] = m
        i += 1
        if i == hout:
            i = 0
            plane += 1


@njit(parallel=True, cache=True)
def _kernel(x, out, kh, kw, sh, sw, dh, dw, top, left, span, nchunks, nthreads):
    total = x.shape[0] * x.shape[1] * out.shape[2]
    counter = np.zeros(1, dtype=np.int64)
    for th in prange(nthreads):
        buf = np.full(span, -np.inf, dtype=x.dtype)
        ch = claim(counter)
        while ch < nchunks:
            _rows(ch * total // nchunks, (ch + 1) * total // nchunks, x, out, kh, kw, sh, sw, dh, dw, top, left, buf)
            ch = claim(counter)


@njit(cache=True)
def _serial(x, out, kh, kw, sh, sw, dh, dw, top, left, span):
    """``_kernel`` on one thread, without a parallel region (launching one took ~15 µs of b3's 0.2 ms)."""
    _rows(0, x.shape[0] * x.shape[1] * out.shape[2], x, out, kh, kw, sh, sw, dh, dw, top, left,
          np.full(span, -np.inf, dtype=x.dtype))


def _pair(v, name):
    # No NumPy call (np.ndim was one): the timed call starts with the interpreter's data evicted from the
    # caches by the input's conversion, and each step of the wrapper costs microseconds there.
    a, b = (v, v) if isinstance(v, (int, np.integer)) else v
    a, b = int(a), int(b)
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be >= 1, got {v!r}")
    return a, b


@fit_threads   # a team of the cores other processes leave free (harness.kernels.threads)
def max_pool2d(x, *, kernel, stride, dilation, pads, out_hw, layout="NCHW", dtype="float32") -> np.ndarray:
    """2-D max pooling of the NCHW array ``x``, in ``dtype``.

    ``x`` (N, C, H, W) holds values exact in ``dtype``, converted to the
    compute dtype first (float32; float64 for ``dtype="float64"``).
    ``kernel``, ``stride`` and ``dilation`` are (h, w) pairs, ``pads`` =
    (top, bottom, left, right): only top/left matter, the size is ``out_hw``
    (``semantics.resolve`` gives both). Returns (N, C, H_out, W_out) for NCHW
    or (N, H_out, W_out, C) for NHWC: float64 for ``dtype="float64"``, else
    float32 (holding values of ``dtype``: a maximum rounds nothing).
    """
    ct = compute_dtype(dtype, layout)
    x = np.ascontiguousarray(x, dtype=ct)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D, got shape {x.shape}")
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    top, _, left, _ = (int(p) for p in pads)
    hout, wout = (int(v) for v in out_hw)
    if top < 0 or left < 0 or hout < 0 or wout < 0:
        raise ValueError(f"pads and out_hw must be >= 0, got {tuple(pads)} and {tuple(out_hw)}")
    nbatch, cin, h, w = x.shape
    out = np.empty((nbatch, cin, hout, wout), ct)
    if out.size == 0:
        return out.transpose(0, 2, 3, 1).copy() if layout == "NHWC" else out
    # The row buffer: column −left at index 0, −∞ wherever no input column is; long enough for the last
    # window's last tap (a ceil_mode window may run past the right padding).
    span = max(left + w, (wout - 1) * sw + (kw - 1) * dw + 1)
    total = nbatch * cin * hout
    nthreads = max(1, min(total, numba.get_num_threads()))
    if nthreads == 1:
        _serial(x, out, kh, kw, sh, sw, dh, dw, top, left, span)
    else:
        _kernel(x, out, kh, kw, sh, sw, dh, dw, top, left, span, chunk_count(total, nthreads), nthreads)
    return np.ascontiguousarray(out.transpose(0, 2, 3, 1)) if layout == "NHWC" else out
