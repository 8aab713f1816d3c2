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
  ``P·NB`` FMAs with a broadcast input operand (``harness.kernels.tiles``,
  shared with the conv2d kernel: explicit 512-bit LLVM vectors).
- **Memory traffic.** The input is packed lazily, row by row, into a small
  per-thread ring of ``(kh−1)·dh/sh + 1`` rows (channel-major, zero-padded
  columns), converting to the compute dtype if need be: nothing of the
  size of the input is written, and there is no column buffer
  (``N·H·W·Cog·kh·kw`` elements) at all. Weights are repacked once per call
  into contiguous per-(group, channel-block) panels, the order the
  micro-kernel streams them.
- **Epilogue.** For NCHW a tile is transposed in registers (shuffle network),
  the bias added and each channel stored with masked vector stores (stride-2
  phases interleave through the masks); NHWC stores are contiguous.
- **Parallelism.** Chunks of consecutive output rows, claimed by the threads one at a time
  (``harness.kernels.tasks``): chunks write disjoint rows, so there is no reduction and no race.
- **Few channels per group** (``Cog`` ≤ ``L`` where the rows fill the
  vectors better than the channels would: grouped, depthwise, and
  ``Cog = L`` with rows of whole vectors): ``numba_pixels``, the same phases
  with vectors of output pixels and up to 8 channels per tile; with stride 1,
  the correlation with the flipped kernel on conv2d's pixel tiles instead
  (``numba_pixels.as_correlation``: their tiles span rows).

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
storing the output take ~15% of the third shape. The grouped shape and
depthwise convolutions, whose channel tiles filled half or 1/16 of each
vector, now take the pixel path (grouped: 3.0 → 1.5 ms on one thread), as
does the third shape (13.0 → 12.0 ms).

Since, the rows path's tiles are at most 3 channel vectors (``_NB_ROWS``; was 4): a 16-column phase row
is two 8 × 3 tiles, not 6 + 6 + 4 pixels × 4, and a step streams 3 weight vectors from L2 for 24
FMAs. b2, one thread, CPU time of the call, median of 31-61 interleaved, load 7-9: 1.35-1.55 →
1.20-1.45 ms (2 vectors: 1.28-1.54). The other shapes have at most 2 vectors per group.
Since, b3 (conv2d's pixel path, ``as_correlation``) takes 0.91-0.93x the time (tiles stored
from the registers, padding rows skipped; ``harness.ops.conv2d.numba_pixels``): 11.9 ms, ratio
0.86 to torch's 13.8 (one thread, CPU time, same method, load 2.5).

Non-finite weights: the tiles multiply the zero columns around the input by
the weights too, and ``0 · inf`` is NaN where the definition has no term at
all. So when ``w`` holds an inf or NaN (the repacking checks the weights to
find out) the call falls back to ``_scatter_exact``, a plain parallel
scatter-add that only ever touches real input pixels. Non-finite inputs need
no fallback: zero padding is never multiplied by them.

A little over 400 lines: the shared register tiles live in
``harness/kernels/tiles.py``; the phase packing, the sweep and the exact
fallback left here are one kernel, and split, each part would only be read
with the others.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from harness.kernels.convert import case_result, compute_dtype
from harness.kernels.packing import scratch
from harness.kernels.pixel_tiles import pack_oc_weights
from harness.kernels.tasks import chunk_count, claim
from harness.kernels.threads import fit_threads
from harness.kernels.tiles import MAX_PIX, store_nchw, tile_sweep, tile_width
from harness.ops.conv2d_transpose.numba_pixels import as_correlation, pixel_path, planes_size, transposed_pixels
from harness.ops.conv2d_transpose.numba_weights import pack_transposed_weights

__all__ = ["conv2d_transpose"]

_NB_ROWS = 3     # channel vectors per register tile on the rows path (3: 8-pixel tiles, see Measured)


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
def _rows(lo, hi, x, wp, biasp, out, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, nb_max):
    """Compute output rows ``lo <= n·H_out + y < hi`` (a chunk)."""
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
    wpad = 2 * qw + wd + MAX_PIX       # packed row: qw zeros | W values | zeros
    xend = min(wout, fw - left)         # output columns >= xend are past the full output
    nb_main = min(nb_max, (cog + lanes - 1) // lanes)
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
                    s = 0
                    while s < cnt:
                        rem = cnt - s
                        npx = tile_width(nb, rem)
                        tile_sweep(tile, buf, g * cig * wpad + xq_lo + s + qw, wpad, tx,
                            wflat, g * wgroup + ob0 * nrow, tw, nt, cig, ob, nb, npx, 0)   # no prefetch: tiles.py
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
                                    store_nchw(oflat, o_base + b * lanes * plane + p0 * sw, plane, sw,
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
def _kernel(x, wp, biasp, out, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, nb_max, nchunks, nthreads):
    total = out.shape[0] * (out.shape[1] if nhwc else out.shape[2])
    counter = np.zeros(1, dtype=np.int64)
    for th in prange(nthreads):
        ch = claim(counter)
        while ch < nchunks:
            _rows(ch * total // nchunks, (ch + 1) * total // nchunks,
                  x, wp, biasp, out, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, nb_max)
            ch = claim(counter)


def _pair(v, name):
    a, b = (int(v), int(v)) if np.ndim(v) == 0 else (int(t) for t in v)
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be >= 1, got {tuple(v)}")
    return a, b


@fit_threads   # a team of the cores other processes leave free (harness.kernels.threads)
def conv2d_transpose(x, w, b, *, stride, dilation, groups, crops, out_hw, layout="NCHW", dtype="float32") -> np.ndarray:
    """2-D transposed convolution, DESIGN.md §2, computed in ``dtype``.

    ``x`` (N, C_in, H, W) and ``w`` (C_in, C_out/groups, kh, kw) are canonical
    NCHW arrays holding values exact in ``dtype``, converted to the compute
    dtype first (float32, float64 for ``dtype="float64"``; the numba backend
    hands them over converted, as the frameworks' adapters convert theirs
    before the timed call), ``b`` is None or (C_out,). ``stride`` and
    ``dilation`` are (h, w) pairs, ``crops`` = (top, bottom, left, right): only
    top/left matter, the size is ``out_hw``. Returns (N, C_out, H_out,
    W_out) for NCHW or (N, H_out, W_out, C_out) for NHWC: float64 for
    ``dtype="float64"``, else float32 holding values rounded to ``dtype``.
    """
    ct = compute_dtype(dtype, layout)
    x = np.ascontiguousarray(x, dtype=ct)
    w = np.ascontiguousarray(w, dtype=ct)
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

    threads = numba.get_num_threads()
    if pixel_path(cog, -(-wout // sw), lanes, nbatch * groups, threads):
        if not np.all(np.isfinite(w)):
            _scatter_exact(x, w, biasp, out, nhwc, groups, sh, sw, dh, dw, top, left)
        elif sh == sw == 1 and top <= (kh - 1) * dh and left <= (kw - 1) * dw:
            as_correlation(x, w, groups, biasp, out, nhwc, dh, dw, top, left, lanes, threads)
        else:
            nthreads = max(1, min(nbatch * groups, threads))
            work = scratch(nthreads * planes_size(cin // groups, h, wd, wout, kw, sw, dw, left, lanes)[1], ct)
            wv = np.empty(w.size, ct)
            pack_oc_weights(w, True, groups, wv)
            transposed_pixels(x, wv, groups, kh, kw, biasp, out, work, nhwc, sh, sw, dh, dw, top, left, lanes,
                              chunk_count(nbatch * groups, nthreads), nthreads)
        return case_result(out, dtype)
    wp = np.empty((groups, kh * kw * (cin // groups) * (-(-cog // lanes) * lanes)), ct)
    if not np.isfinite(pack_transposed_weights(w, wp, lanes, _NB_ROWS)):
        _scatter_exact(x, w, biasp, out, nhwc, groups, sh, sw, dh, dw, top, left)
    else:
        nthreads = max(1, min(nbatch * hout, threads))
        _kernel(x, wp, biasp, out, nhwc, kh, kw, sh, sw, dh, dw, top, left, lanes, _NB_ROWS,
                chunk_count(nbatch * hout, nthreads), nthreads)
    return case_result(out, dtype)
