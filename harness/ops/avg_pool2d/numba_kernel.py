"""Fast 2-D average pooling for the ``numba`` backend (DESIGN.md §3, §8).

Definition (Note [Average pooling] in ``semantics.py``; the same as the oracle)::

    out[n, c, i, j] = Σ x[n, c, i·sh − top + a, j·sw − left + b] / count(i, j)

the sum over the taps ``a < kh``, ``b < kw`` inside the input (padding adds
nothing), ``count = count_h(i) · count_w(j)`` the window's positions inside
the input or, with ``count_include_pad``, inside the input and its padding
``[−top, H + bottom) × [−left, W + right)`` (a ``ceil_mode`` window's overhang
past the padding never counts).

Design
------
*Separable, one output row at a time.* A window's sum is the sum across its
columns of the sums down its rows. For output row ``i`` of a plane the thread
adds the window's input rows inside the input (``rows.sum_rows``: explicit
512-bit vectors, the row's tail masked) into a row buffer whose cells left
and right of the input are 0 (written once per thread), then sums ``kw``
cells of that buffer per output (no bounds checks) and multiplies it by
``1/count(i, j)``, a table computed once per call in float64 and rounded to
the compute dtype (the bound allows the two roundings: Note [Average
pooling]). Across the columns: stride 1, one vector run per tap
(``sum_rows`` again); windows of 4 to ``L`` columns, one masked vector and a
tree per window (``sum_windows``); 2- and 3-wide windows at stride 2, loops
with constant strides; the rest a generic loop. A padded row that fits one
vector (``left + W ≤ L``: b3's 14-pixel rows) is reduced down and across in
registers (``sum_narrow``), with no row buffer in between. An output row
with no input row (a window of counted padding only) is 0. The loop body is
written out in ``_rows`` with array offsets: a helper function per output
row (inlined by Numba or not) or a view per row measured twice the time of
b3's whole rows.

The work is ``N·C·H_out`` output rows, cut into chunks claimed by the threads
one at a time (``harness.kernels.tasks``); the team is ``fit_threads``'s.
NHWC output (the input is always the canonical NCHW array) is the NCHW result
transposed: a layout conformance cases use, not a fast path.

float16/bfloat16 are summed in float32 (the backend declares that
accumulation) and the result is rounded once (to nearest even) to the case
dtype; float32 in float32, float64 in float64. The sums run in another order
than the oracle's (pairs of rows, trees across a window), which the bound
(any order) covers. ``x`` arrives in the compute dtype (the numba backend
converts it before the timed call).

Measured (benchmarks/avg_pool2d.yaml, float32 NCHW; each library in its own
process, the input converted from float64 before every call as the backend's
program does: numba by ``harness.kernels.convert``, torch by
``.to(torch.float32)``; the call alone timed, median of 40 after 5 warm-ups;
torch 2.13 ``torch.nn.functional.avg_pool2d``; 2-core AVX-512 VM shared with
other jobs, a quiet stretch at load 0.7):

=====================  ==================  ==================  =====
shape                  1 thread: numba,    2 threads: numba,   ratio
                       torch (ms)          torch (ms)          (2)
=====================  ==================  ==================  =====
b1 (8,64,56,56) k2 s2  0.626, 3.12         0.388, 2.01         0.19
b2 k3 s2 valid         0.580, 3.27         0.394, 2.00         0.20
b3 (16,256,14,14) k7   0.162, 0.389        0.115, 0.280        0.41
=====================  ==================  ==================  =====

``conform bench`` (two runs, load 0.9-1.0): numba 0.39, 0.36, 0.14 and
0.42, 0.40, 0.15 ms; torch 1.64, 1.79, 0.22 in the second (in the first
another job started). b3 is near its floor, reading the 3.2 MB input just
written: ``x.max()`` takes 0.145 ms there on one thread; the padded-row
path alone 0.15 ms, the loop around it +0.03 and the Python wrapper, cold
after the conversion, +0.03-0.045 (``fit_threads`` alone ~15 µs: it reads
the team and the load). With NumPy converting x (one thread), b3 took
0.21 ms on two threads: ``harness.kernels.convert`` says why.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from harness.kernels.convert import case_result, compute_dtype
from harness.kernels.rows import sum_narrow, sum_rows, sum_windows
from harness.kernels.tasks import chunk_count, claim
from harness.kernels.threads import fit_threads

__all__ = ["avg_pool2d"]


@njit(cache=True)
def _rows(lo, hi, x, out, inv, kh, kw, sh, sw, top, left, buf):
    """Output rows ``lo <= (n·C + c)·H_out + i < hi``; ``buf`` is 0 outside the input's columns.

    One loop body, no helper functions: a call per output row (inlined by Numba or not) measured twice
    the time of the whole row on b3 (7×7 windows over 14-pixel rows). Array offsets, not views or
    arrays chosen per row, for the same reason (each costs reference counting: two atomic updates per
    row)."""
    h, w = x.shape[2], x.shape[3]
    hout, wout = out.shape[2], out.shape[3]
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    invf = inv.reshape(inv.size)
    # across a window's columns: 0 one run per tap (stride 1), 1 one masked vector per window, 2-3 loops
    # with constant strides, 4 the generic loop; 5: the padded row fits one vector (rows.sum_narrow)
    lanes = 64 // buf.itemsize
    if buf.shape[0] <= lanes:
        across = 5
    elif sw == 1:
        across = 0
    elif kw > 3 and kw <= lanes:
        across = 1
    elif sw == 2 and kw == 2:
        across = 2
    elif sw == 2 and kw == 3:
        across = 3
    else:
        across = 4
    plane = lo // hout
    i = lo - plane * hout
    for task in range(lo, hi):
        r0 = i * sh - top
        a0 = max(0, -r0)                        # the window's first row inside the input
        a1 = min(kh, h - r0)                    # past its last
        o = task * wout
        v = i * wout
        if across == 5:
            sum_narrow(xf, plane * h * w + (r0 + a0) * w, w, max(0, a1 - a0), left, w, sw, kw, wout, of, o, invf, v)
        else:
            # down: buf[left:left + W] = the sum of the window's rows inside the input (0: none)
            if a1 > a0:
                sum_rows(xf, plane * h * w + (r0 + a0) * w, w, a1 - a0, buf, left, w)
            else:
                buf[left:left + w] = 0.0
            # across: output j of the row (of[o + j]) = the sum of buf[j·sw + b], b < kw, times 1/count
            if across == 0:
                sum_rows(buf, 0, 1, kw, of, o, wout)
                for j in range(wout):
                    of[o + j] *= invf[v + j]
            elif across == 1:
                sum_windows(buf, 0, sw, kw, of, o, wout)
                for j in range(wout):
                    of[o + j] *= invf[v + j]
            elif across == 2:
                for j in range(wout):
                    of[o + j] = (buf[2 * j] + buf[2 * j + 1]) * invf[v + j]
            elif across == 3:
                for j in range(wout):
                    of[o + j] = (buf[2 * j] + buf[2 * j + 1] + buf[2 * j + 2]) * invf[v + j]
            else:
                for j in range(wout):
                    t = buf[j * sw]
                    for b in range(1, kw):
                        t += buf[j * sw + b]
                    of[o + j] = t * invf[v + j]
        i += 1
        if i == hout:
            i = 0
            plane += 1


def _pair(v, name):
    # No NumPy call (np.ndim was one): the timed call starts with the interpreter's data evicted from the
    # caches by the input's conversion, and each step of the wrapper costs microseconds there.
    a, b = (v, v) if isinstance(v, (int, np.integer)) else v
    a, b = int(a), int(b)
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be >= 1, got {v!r}")
    return a, b


@njit(cache=True)
def _inverse_counts(x, out, kh, kw, sh, sw, top, bottom, left, right, include_pad):
    """``inv[i, j] = 1 / (count_h(i) · count_w(j))`` in ``x``'s dtype, the count of window positions inside
    the input (or input + padding), computed in float64 and rounded once. Here, not in Python: NumPy
    took 15 µs a call, as long as b3's whole pooling on two threads takes a tenth of."""
    h, w = x.shape[2], x.shape[3]
    hout, wout = out.shape[2], out.shape[3]
    inv = np.empty((hout, wout), dtype=x.dtype)
    low_h, high_h = (-top, h + bottom) if include_pad else (0, h)
    low_w, high_w = (-left, w + right) if include_pad else (0, w)
    for i in range(hout):
        start = i * sh - top
        ch = max(0, min(high_h, start + kh) - max(low_h, start))
        for j in range(wout):
            start = j * sw - left
            cw = max(0, min(high_w, start + kw) - max(low_w, start))
            # no valid call has a count of 0; if one did, 0 · inf gives NaN, as 0 / 0 in the definition
            inv[i, j] = 1.0 / (ch * cw) if ch * cw > 0 else np.inf
    return inv


@njit(parallel=True, cache=True)
def _kernel(x, out, kh, kw, sh, sw, top, bottom, left, right, include_pad, span, nchunks, nthreads):
    inv = _inverse_counts(x, out, kh, kw, sh, sw, top, bottom, left, right, include_pad)
    total = x.shape[0] * x.shape[1] * out.shape[2]
    counter = np.zeros(1, dtype=np.int64)
    for th in prange(nthreads):
        buf = np.zeros(span, dtype=x.dtype)
        ch = claim(counter)
        while ch < nchunks:
            _rows(ch * total // nchunks, (ch + 1) * total // nchunks, x, out, inv, kh, kw, sh, sw, top, left, buf)
            ch = claim(counter)


@njit(cache=True)
def _serial(x, out, kh, kw, sh, sw, top, bottom, left, right, include_pad, span):
    """``_kernel`` on one thread, without a parallel region (launching one took ~15 µs of b3's 0.2 ms)."""
    inv = _inverse_counts(x, out, kh, kw, sh, sw, top, bottom, left, right, include_pad)
    _rows(0, x.shape[0] * x.shape[1] * out.shape[2], x, out, inv, kh, kw, sh, sw, top, left,
          np.zeros(span, dtype=x.dtype))


@fit_threads   # a team of the cores other processes leave free (harness.kernels.threads)
def avg_pool2d(x, *, kernel, stride, pads, out_hw, count_include_pad=False, layout="NCHW",
               dtype="float32") -> np.ndarray:
    """2-D average pooling of the NCHW array ``x``, in ``dtype``.

    ``x`` (N, C, H, W) holds values exact in ``dtype``, converted to the
    compute dtype first (float32; float64 for ``dtype="float64"``).
    ``kernel`` and ``stride`` are (h, w) pairs, ``pads`` = (top, bottom,
    left, right), the size is ``out_hw`` (``semantics.resolve`` gives both).
    Returns (N, C, H_out, W_out) for NCHW or (N, H_out, W_out, C) for NHWC:
    float64 for ``dtype="float64"``, else float32 holding values rounded to
    ``dtype``.
    """
    ct = compute_dtype(dtype, layout)
    x = np.ascontiguousarray(x, dtype=ct)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D, got shape {x.shape}")
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    top, bottom, left, right = (int(p) for p in pads)
    hout, wout = (int(v) for v in out_hw)
    if min(top, bottom, left, right, hout, wout) < 0:
        raise ValueError(f"pads and out_hw must be >= 0, got {tuple(pads)} and {tuple(out_hw)}")
    nbatch, cin, h, w = x.shape
    out = np.empty((nbatch, cin, hout, wout), ct)
    if out.size == 0:
        return out.transpose(0, 2, 3, 1).copy() if layout == "NHWC" else out
    # The row buffer: column −left at index 0, 0 wherever no input column is; long enough for the last
    # window's last tap (a ceil_mode window may run past the right padding).
    span = max(left + w, (wout - 1) * sw + kw)
    total = nbatch * cin * hout
    nthreads = max(1, min(total, numba.get_num_threads()))
    include = bool(count_include_pad)
    if nthreads == 1:
        _serial(x, out, kh, kw, sh, sw, top, bottom, left, right, include, span)
    else:
        _kernel(x, out, kh, kw, sh, sw, top, bottom, left, right, include, span, chunk_count(total, nthreads),
                nthreads)
    return case_result(np.ascontiguousarray(out.transpose(0, 2, 3, 1)) if layout == "NHWC" else out, dtype)
