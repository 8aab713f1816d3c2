"""Fast 2-D convolution for the ``numba`` backend (DESIGN.md §3, §8).

Definition (same as the oracle; padding contributes no term)::

    out[n, g·Cog + o, y, x] = b[g·Cog + o] + Σ_{ci, i, j} x[n, g·Cig + ci, y·sh + i·dh − top, x·sw + j·dw − left]
                                                       · w[g·Cog + o, ci, i, j]

Design
------
*Output-stationary direct convolution with register tiles; no BLAS, and an
im2col buffer only for small images.* Three paths share the building blocks of
``harness.kernels.tiles`` (with the transposed kernel): the register-tile
micro-kernel (explicit 512-bit LLVM vectors, ``P`` pixels × ``NB·L`` output
channels, ``K = taps × Cig`` swept with broadcast input operands) and the
NCHW store; and of ``harness.kernels.packing``: the phase-packed input row
and the reused scratch memory.

- **Rows** (this module; the default). Output column ``x`` reads padded
  column ``x·sw + j·dw``; each input row is copied (converted if need be) and packed
  with padded column ``c`` at phase ``c mod sw``, position ``c div sw``, so tap
  ``j`` reads consecutive positions for consecutive ``x`` whatever the stride
  (padding columns are zeros, never written). A thread packs a band of input
  rows at a time, channel by channel (sequential reads; a row from every
  channel in turn defeats the prefetcher), sized to ~1 MB of L2, then
  computes each output row from it: taps in the top/bottom padding are
  dropped, tiles of up to 4 channel vectors run along the row.
- **im2col blocks** (``numba_gemm``): narrow outputs (``W_out ≤ 16``) whose
  weight panel per channel vector exceeds half of L1 (b2: 8 pixels per row
  would re-stream a 590 KB panel per 6-8 pixels). Blocks of up to 64 output
  pixels are laid out im2col-style, ``K`` rows in ``w``'s own order, and swept
  by ``gemm_tiles`` (6 channels × 4 pixel vectors, or 12 × 2), the weights read
  in place: no repacking.
- **Pixel vectors** (``numba_pixels``): ``Cog ≤ 4`` (depthwise and the like)
  or when a row fills more of a vector than the group's channels (b4: 8
  channels, 16-pixel rows; b3: 16 channels, 64-pixel rows). Per group, the
  input planes are packed once with zero padding rows and swept by
  ``pixel_tiles``: 8 output channels × 3 vectors of pixels (one channel:
  2-8 rows × 1-4 vectors), the weights broadcast.
- **Winograd F(2×2, 3×3)** (``numba_winograd``): 3×3, stride 1, undilated,
  one group, float32 compute, at least 32 input and 32 output channels and
  512 output tiles (b1). 16 products ``U_ξ @ V_ξ`` per block of 64 tiles,
  swept by ``gemm_tiles`` (2.25x fewer multiply-adds); the data is checked in
  the passes the path makes anyway, and non-finite, huge, tiny or heavy-tailed
  operands fall back to the path the plan would take without it (its Note).
- **Weights** are repacked per call into the micro-kernel's channel blocks
  (``numba_weights.pack_weights``) on the rows path.
- **Plans** (``numba_plan``): the checks of a call's parameters, its path and
  sizes, made once per shape and kept (the Python around the kernels is cold).
- **Parallelism.** Chunks of consecutive output rows (rows),
  ``(n, group, pixel block, channel range)`` tasks (im2col) or ``(n, group)`` (pixels), claimed by the
  threads one at a time (``harness.kernels.tasks``): disjoint outputs, no reduction, no race.

float16/bfloat16 are computed with float32 accumulation and the result is
rounded once (round to nearest even) to the case dtype; float64 is computed
in float64. Every ``njit`` uses ``cache=True``; ``harness.kernels.jitcache``
makes the cache keys cover ``tiles.py`` too.

Non-finite weights: the tiles multiply the zero columns around the input by
the weights, and ``0 · inf`` is NaN where the definition has no term. So when
``w`` holds an inf or NaN (the repacking sums the weights to find out) the
call falls back to ``_direct_exact``, a plain parallel loop over in-bounds
terms only (im2col blocks: found from the output, see ``numba_gemm``).
Non-finite inputs need no fallback.

Measured (benchmarks/conv2d.yaml, float32; torch 2.13 ``conv2d``; one process,
calls alternating, median of 21 (41 on 2 threads), same thread counts; 2-core
AVX-512 VM, load 2.3-5.3; ratios numba/torch over 3-8 rounds, times of one):

=================================  ===========================  ===========  ===========
shape (bias)                       1 thread: numba, torch       ratio 1 thr  ratio 2 thr
=================================  ===========================  ===========  ===========
b1 (8,64,32,32)→64 k3 s1 p1         4.11 ms 147 GF/s,  3.35 ms  1.17-1.24    1.15-1.29
b2 (1,256,16,16)→128 k3 s2 same     0.59 ms  64 GF/s,  0.50 ms  1.13-1.23    1.15-1.33
b3 (16,32,64,64)→16 k5 d2 same     12.59 ms 133 GF/s, 10.63 ms  1.05-1.19    0.98-1.20
b4 (8,64,32,32)→64 k3 s2 g8 same    0.75 ms  25 GF/s,  0.77 ms  0.90-1.05    0.89-1.04
b5 (8,64,56,56) depthwise k3 same   1.28 ms  23 GF/s,  1.51 ms  0.83-1.04    0.85-1.04
b1 Winograd (below; load 0.0-0.3)   1.40 ms 431 GF/s*, 2.59 ms  0.54-0.55    0.57-0.65
=================================  ===========================  ===========  ===========

(* direct-equivalent work: 2·K·outputs flops over the time, 2.25x the multiply-adds done.)

Two threads: most rounds had 10-40 ms stalls for both libraries; the ranges
are from the clean ones. Peak: 166 GFLOP/s a core (2.6 GHz × 16 lanes × 2 FMA
units × 2). Since (one thread, CPU time, interleaved with torch): row ends
in tiles of their own width (``tiles.WIDTHS``), b1 1.19-1.25 → 1.08, b3 1.08
→ 0.98-1.03; im2col blocks for b2 0.59 → 0.37 ms; 8 × 3 pixel tiles for b3
1.05 → 0.94, then 0.93-0.94x the time (pixel tiles stored from the registers,
padding rows skipped: ``numba_pixels``), ratio 0.84 (load 2.5); the weights
prefetched in the micro-kernel, b1 0.955-0.984x. b1 then split as tiles ~3.45 ms, NCHW stores 0.24, packing 0.13,
rest 0.07. No gain or a loss: each block's row of tiles stored at once, rows
staged per channel, non-temporal or aligned stores (+7%, +3%), ``prefetchw``
of the output, the input packed row by row, a tighter band, ``_NB_ROWS``
1/3/4, the pixel path, input-channel chunks (3.67 → 4.02 ms). A call right
after torch's runs 3-5% slower (its data evicted ours): rotate A/B orders.

Winograd (b1 is the only benchmark shape that takes it). One process; numba's
OpenMP pool started before torch loaded its own (the other order made
torch's conv2d 7x slower here); Winograd, rows and torch calls rotated,
medians of 40 after 10 warm-ups, wall time (``process_time`` of a sub-ms
two-thread call misses the pool thread's share). Quiet machine (load
0.0-0.3, 8 rounds): two threads 0.77-0.96 ms against rows 1.30-1.56 and
torch 1.30-1.66 (0.57-0.65x torch); one thread 1.40-1.54 against 2.53-2.72
and 2.59-2.79 (0.54-0.55x). b2-b5 keep their paths (same times within 5%). Of a one-thread
call (parts timed alone, load ~5, whole 1.46-1.49 ms): the 16 products
1.06 ms (~250 GF/s of direct-equivalent work: the gemm tile's in-cache
rate), ``winograd()`` 1.36-1.40 (so ~0.32 for the input and output transforms
and the set-up; reading the patches from the planes instead of packing the
rows first saved 0.10, and ``V``'s planes a cache line more than 16 KB apart
0.3: 16 streams in one L1 set), the weight transform 0.055, Python ~0.04.
At load 4-6 from other jobs: one thread 0.63-0.75x torch, two threads
unmeasurable (torch 16-20 ms, numba's team cut to one). Not taken, by measurement (one thread, same
way, load ~5): one image of 16×16 × 32→32 channels (0.085 vs 0.057 ms), 8×8
× 64→64 (0.093 vs 0.039), 16×16 × 256→256 (2.3 vs 1.3), 7×7 × 512→512 (6.0
vs 3.0: ``U`` is made per call, 16·C_out·C_in); taken ones gained 0.58-0.75x
of the direct time (8×32×32×32→32 0.58 vs 0.77 ms, 8×16×16×128→128 1.8 vs
3.1). The 6 × 4-vector gemm tile (6 broadcasts, 4 loads per 24 FMAs) ran the
products in 1.06 ms, the 12 × 2 one (12 broadcasts) in 2.7-2.9.

b1 is compute-bound against torch: its sweeps run at the micro-kernel's
in-cache rate (12 × 2 tile: 24 FMAs, 12 broadcasts, 2 weight loads a step;
155-185 GF/s by the clock of the hour; 8 × 2 7% less, 14 × 2 3% more), and
torch about reaches it over its whole call (3.96 ms = 153 GF/s where the
tile ran 161): 0.92x torch needs more than the tile's peak, i.e. fewer
multiply-adds (Winograd F(2×2, 3×3), 2.25x fewer; not tried: other rounding,
and non-finite inputs would need a fallback). Later, no gain (one thread,
variants interleaved in one process, medians of 30-40, b1 4.2-4.7 ms with
other jobs running): tiles writing into a channel-blocked stage ([block]
[pixel][32], 2-32 rows) flushed to NCHW in runs per channel 0.99-1.03x (with
non-temporal stores 1.2x); chunks of 16/32 channels, accumulators reloaded in
the micro-kernel (weights L1-resident for the row's 3 tiles) 1.04-1.07x; 16 ×
1 tiles 1.17x; the output prefetched 2 rows ahead (L1, L2, for writing)
0.99-1.0x. Without stores b1 ran 0.41-0.62 ms faster, yet the 2 MB written
from a hot stage alone take 0.12-0.14 ms (0.19 cold): the output stream slows
the sweeps whatever the pattern. Python around the kernels (cold after the
operands' conversion) cost b2 ~0.09 of 0.42 ms: ``_pair`` without ``np.ndim``,
the output sum in ``numba_gemm``, fewer generators: b2 0.47 → 0.44 ms (CPU
time, 6 alternating processes of 300 calls, medians); plans kept per shape
(``numba_plan``) 5% more; stride-2 rows split by vector shuffles
(``packing``) 3%.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

# The register-tile micro-kernel, the NCHW tile store and their tile widths are shared with
# the transposed convolution: same tile, different addressing of the packed input.
from harness.kernels.convert import case_result, compute_dtype
from harness.kernels.packing import pack_row, scratch
from harness.kernels.pixel_tiles import pack_oc_weights
from harness.kernels.tasks import claim
from harness.kernels.threads import fit_threads
from harness.kernels.tiles import store_nchw, tile_sweep, tile_width
from harness.ops.conv2d.numba_gemm import gemm
from harness.ops.conv2d.numba_pixels import pixel_tiles
from harness.ops.conv2d.numba_plan import GEMM, PIXELS, WINOGRAD, plan
from harness.ops.conv2d.numba_weights import pack_weights
from harness.ops.conv2d.numba_winograd import BALANCE, aw_size, transform_weights, u_size, winograd
from harness.ops.conv2d.numba_winograd import winograd_safe, x_limit

__all__ = ["conv2d"]

# Channel vectors per register tile on the rows path: 2 (12 pixels) streams half the weight bytes
# per multiply-add of 4 (6 pixels), which matters once a panel spills L1 (b1: 1.33-1.36x -> 1.17-1.24x).
_NB_ROWS = 2


@njit(cache=True)
def _fill_bias(out, nhwc, n, y, biasp, cout):
    """An output row that no tap reaches: just the bias."""
    wout = out.shape[2] if nhwc else out.shape[3]
    for oc in range(cout):
        for x in range(wout):
            if nhwc:
                out[n, y, x, oc] = biasp[oc]
            else:
                out[n, oc, y, x] = biasp[oc]


@njit(cache=True)
def _tiles(buf, xci, tx, tw, nt, wflat, wgroup, nrow, biasp, oflat, tile, n, y, nhwc, groups, cig, cog,
           hout, wout, lanes, nb_max):
    """One output row from its packed input rows, tap list ``tx``/``tw``: register tiles over channels."""
    cout = cog * groups
    nb_main = min(nb_max, (cog + lanes - 1) // lanes)
    plane = hout * wout
    for g in range(groups):
        ob0 = 0
        while ob0 < cog:
            nb = min(nb_main, (cog - ob0 + lanes - 1) // lanes)
            ob = nb * lanes
            nvalid = min(ob, cog - ob0)
            oc0 = g * cog + ob0
            s = 0
            while s < wout:
                rem = wout - s
                npx = tile_width(nb, rem)
                tile_sweep(tile, buf, g * cig * xci + s, xci, tx, wflat, g * wgroup + ob0 * nrow, tw, nt, cig, ob, nb,
                           npx, 1)     # the weights prefetched: a panel streams from L2 here
                pv = min(npx, rem)
                if nhwc:
                    o_base = ((n * hout + y) * wout + s) * cout + oc0
                    for p in range(pv):
                        for o in range(nvalid):
                            oflat[o_base + p * cout + o] = tile[p * ob + o] + biasp[oc0 + o]
                else:
                    o_base = ((n * cout + oc0) * hout + y) * wout + s
                    for b in range(nb):
                        nch = min(lanes, nvalid - b * lanes)
                        if nch <= 0:
                            break
                        for p0 in range(0, pv, lanes):
                            store_nchw(oflat, o_base + b * lanes * plane + p0, plane, 1, min(lanes, pv - p0), nch,
                                        biasp, oc0 + b * lanes, tile, p0 * ob + b * lanes, ob)
                s += npx
            ob0 += ob


@njit(cache=True)
def _rows(lo, hi, x, w, wp, biasp, out, buf, nhwc, sh, sw, dh, dw, top, left, lanes, nb_max, seg, reach, block):
    """Compute output rows ``lo <= n·H_out + y < hi`` (a chunk); ``buf`` is the thread's band, zero but
    where earlier chunks of this call packed rows (every row packs the same positions), laid out as the
    plan's ``numba_plan.band`` says (``seg``, ``reach``, ``block``: passed in, not computed here, where
    Numba's cache of this file would keep an old ``band`` after an edit of numba_plan.py)."""
    nbatch, cin, h, wd = x.shape
    cout, cig, kh, kw = w.shape
    groups = cin // cig
    cog = cout // groups
    if nhwc:
        hout, wout = out.shape[1], out.shape[2]
    else:
        hout, wout = out.shape[2], out.shape[3]
    xci = sw * seg                                      # one channel of a packed row
    per_row = cin * xci
    wgroup = wp.shape[1]
    nrow = kh * kw * cig
    wflat = wp.reshape(wp.size)
    oflat = out.reshape(out.size)

    tile = np.zeros(32 * 64, dtype=out.dtype)           # >= 32 rows x 64 lanes (padded reads)
    tx = np.empty(kh * kw, dtype=np.int64)              # per-tap input offset in the band
    tw = np.empty(kh * kw, dtype=np.int64)              # per-tap first weight row in a block
    b_lo = 0
    b_hi = -1                                           # band rows b_lo..b_hi of image cur_n are packed
    cur_n = -1
    for task in range(lo, hi):
        n = task // hout
        y = task - n * hout
        a_first = y * sh - top                          # input row of kernel row 0
        if n != cur_n or min(a_first + reach - 1, h - 1) > b_hi:
            # next band: the input rows of output rows y .. y + block - 1 (this image, this thread)
            cur_n = n
            y_end = min(y + block, hout, y + hi - task)
            b_lo = max(a_first, 0)
            b_hi = min((y_end - 1) * sh - top + reach - 1, h - 1)
            for ci in range(cin):
                for a in range(b_lo, b_hi + 1):
                    pack_row(x[n, ci, a], buf, (a - b_lo) * per_row + ci * xci, left, sw, seg)
        nt = 0
        for i in range(kh):
            a = a_first + i * dh
            if a < 0 or a >= h:
                continue
            rowoff = (a - b_lo) * per_row
            for j in range(kw):
                q = (j * dw) // sw
                tx[nt] = rowoff + (j * dw - q * sw) * seg + q
                tw[nt] = (i * kw + j) * cig
                nt += 1
        if nt == 0:
            _fill_bias(out, nhwc, n, y, biasp, cout)
        else:
            _tiles(buf, xci, tx, tw, nt, wflat, wgroup, nrow, biasp, oflat, tile, n, y, nhwc, groups, cig, cog,
                   hout, wout, lanes, nb_max)


@njit(parallel=True, cache=True)
def _kernel(x, w, wp, biasp, out, work, nhwc, sh, sw, dh, dw, top, left, lanes, nb_max, nchunks, nthreads, seg, reach,
            block):
    total = out.shape[0] * (out.shape[1] if nhwc else out.shape[2])
    size = work.shape[0] // nthreads
    counter = np.zeros(1, dtype=np.int64)
    for th in prange(nthreads):
        buf = work[th * size:(th + 1) * size]
        buf[:] = 0                                      # packed input band; padding stays 0
        ch = claim(counter)
        while ch < nchunks:
            _rows(ch * total // nchunks, (ch + 1) * total // nchunks, x, w, wp, biasp, out, buf, nhwc, sh, sw,
                  dh, dw, top, left, lanes, nb_max, seg, reach, block)
            ch = claim(counter)


@njit(parallel=True, cache=True)
def _direct_exact(x, w, biasp, out, nhwc, sh, sw, dh, dw, top, left):
    """The definition as a loop over in-bounds terms only, one output plane per task;
    used when the weights hold inf or NaN."""
    nbatch, cin, h, wd = x.shape
    cout, cig, kh, kw = w.shape
    cog = cout // (cin // cig)
    hout, wout = (out.shape[1], out.shape[2]) if nhwc else (out.shape[2], out.shape[3])
    for task in prange(nbatch * cout):
        n = task // cout
        oc = task - n * cout
        g = oc // cog
        for y in range(hout):
            for xo in range(wout):
                acc = 0.0
                for ci in range(cig):
                    for i in range(kh):
                        a = y * sh + i * dh - top
                        if a < 0 or a >= h:
                            continue
                        for j in range(kw):
                            c = xo * sw + j * dw - left
                            if c >= 0 and c < wd:
                                acc += x[n, g * cig + ci, a, c] * w[oc, ci, i, j]
                if nhwc:
                    out[n, y, xo, oc] = acc + biasp[oc]
                else:
                    out[n, oc, y, xo] = acc + biasp[oc]


@fit_threads   # a team of the cores other processes leave free (harness.kernels.threads)
def conv2d(x, w, b, *, stride, dilation, groups, pads, out_hw, layout="NCHW", dtype="float32") -> np.ndarray:
    """2-D convolution (cross-correlation), computed in ``dtype``.

    ``x`` (N, C_in, H, W) and ``w`` (C_out, C_in/groups, kh, kw) are canonical
    NCHW arrays holding values exact in ``dtype``, converted to the compute
    dtype first (float32, float64 for ``dtype="float64"``; the numba backend
    hands them over converted, as the frameworks' adapters convert theirs
    before the timed call), ``b`` is None or (C_out,). ``stride`` and
    ``dilation`` are (h, w) pairs, ``pads`` = (top, bottom, left, right): only
    top/left matter, the size is ``out_hw`` (``semantics.resolve`` gives
    both). Returns (N, C_out, H_out, W_out) for NCHW or (N, H_out, W_out,
    C_out) for NHWC: float64 for ``dtype="float64"``, else float32 holding
    values rounded to ``dtype``.
    """
    ct = compute_dtype(dtype, layout)
    x = np.ascontiguousarray(x, dtype=ct)
    w = np.ascontiguousarray(w, dtype=ct)
    p = plan(x.shape, w.shape, None if b is None else np.shape(b), stride, dilation, groups, pads, out_hw, layout,
             dtype, numba.get_num_threads(), _NB_ROWS)
    (sh, sw), (dh, dw), top, left, lanes, cout = p.stride, p.dilation, p.top, p.left, p.lanes, p.cout
    nhwc = layout == "NHWC"
    groups = x.shape[1] // w.shape[1]
    out = np.empty(p.out_shape, ct)
    biasp = np.zeros(cout + lanes, ct)
    if b is not None:
        biasp[:cout] = np.asarray(b, dtype=np.float64)
    if out.size == 0:
        return out
    if p.path == WINOGRAD:
        # U in the reused work memory too: a fresh 260 KB array (b1) is mapped and faulted in every call
        usize = u_size(cout, w.shape[1])
        wsize = usize + aw_size(cout, w.shape[1])         # then |w| by tap (the weighted balance)
        work = scratch(wsize + p.nthreads * p.size, ct)
        u, aw = work[:usize], work[usize:wsize]
        wstats = transform_weights(w, u, aw)
        xstats = winograd(x, u, aw, biasp, out, work[wsize:], nhwc, top, left, p.nb, p.ntasks, p.nthreads,
                          x_limit(wstats, w.shape[1]), BALANCE)
        if winograd_safe(xstats, wstats):
            return case_result(out, dtype)
        p = p.fallback                                  # data the transforms must not see (numba_winograd)
    if p.path == PIXELS:
        if not np.all(np.isfinite(w)):
            _direct_exact(x, w, biasp, out, nhwc, sh, sw, dh, dw, top, left)
        else:
            wv = np.empty(w.size, ct)
            pack_oc_weights(w, False, groups, wv)
            pixel_tiles(x, wv, groups, w.shape[2], w.shape[3], biasp, out, scratch(p.nthreads * p.size, ct), nhwc,
                        sh, sw, dh, dw, top, left, lanes, p.nchunks, p.nthreads)
    elif p.path == GEMM:
        total = gemm(x, w, biasp, out, scratch(p.nthreads * p.size, ct), nhwc, groups, sh, sw, dh, dw, top, left,
                     lanes, p.nb, p.nchunks, p.ntasks, p.nthreads)
        # see numba_gemm: non-finite weights. The sum of the outputs less the bias (gemm's, as it stores them)
        # is non-finite if an output is (or it overflows: then w decides); out.sum() here cost 3-20 µs more.
        if not (math.isfinite(total) or np.all(np.isfinite(w))):
            _direct_exact(x, w, biasp, out, nhwc, sh, sw, dh, dw, top, left)
    else:
        wp = np.empty(p.wp_shape, ct)
        if not math.isfinite(pack_weights(w, wp, lanes, p.nb)):
            _direct_exact(x, w, biasp, out, nhwc, sh, sw, dh, dw, top, left)
        else:
            _kernel(x, w, wp, biasp, out, scratch(p.nthreads * p.size, ct), nhwc, sh, sw, dh, dw, top, left, lanes,
                    p.nb, p.nchunks, p.nthreads, *p.band_layout)
    return case_result(out, dtype)
