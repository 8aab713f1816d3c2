"""The ``numba`` conv2d kernel's Winograd path: 3×3, stride 1, undilated, float32 compute, one group.

Called by ``harness.ops.conv2d.numba_kernel`` when ``numba_plan`` chose it
(``winograd_fits``), with a fallback to the direct paths that the caller takes
when ``winograd`` reports data it must not transform (Note [Winograd F(2x2,
3x3)]). This module owns the weight transform, the blocking of the output's
2×2 tiles into tasks, and the driver; the per-tile transforms are
``harness.kernels.winograd_tiles``, the products ``harness.kernels.gemm_tiles``.

Note [Winograd F(2x2, 3x3)]
---------------------------
*Algorithm* (Lavin & Gray 2016). Each 2×2 block of outputs (a tile) of one
output channel is, with ``d`` the tile's 4×4 padded input patch per input
channel and ``g`` the 3×3 weights::

    Y = Aᵀ [ Σ_ci (G g G ᵀ) ⊙ (Bᵀ d B) ] A,   Bᵀ: rows (1,0,−1,0) (0,1,1,0) (0,−1,1,0) (0,1,0,−1),
                                              G: rows (1,0,0) (½,½,½) (½,−½,½) (0,0,1),
                                              Aᵀ: rows (1,1,1,0) (0,1,−1,−1)

16 multiply-adds per input channel and tile against 36 direct: the ``Σ_ci``
is 16 independent products ``U_ξ (C_out × C_in) @ V_ξ (C_in × tiles)``, swept
by ``gemm_tiles.gemm_sweep`` (6 channels × 4 tile vectors, 24 accumulators).
A task is one image's block of ``T = NB·L`` consecutive tiles (flattened
``ty·tiles_w + tx``; ``NB`` = 4 unless ``V`` would pass 512 KB or the
threads would get fewer than two tasks each): its input channels' patches are
read from the input planes and transformed into ``V`` (16·C_in·T floats, in
L2), then per block of 6 output channels the 16 products land in ``M`` (L1)
and are transformed back and stored. Tiles past the output's edge are
computed and not stored. ``U`` (16·C_out·C_in) is made per call, in float64
and rounded once (``_transform_weights``). Chosen (``winograd_fits``) for at
least ``MIN_CIN`` = 32 input channels (numerics, below), ``MIN_COUT`` = 32
output channels and ``MIN_TILES`` = 512 tiles per call: below those the
per-call ``U`` and the transforms cost more than the products save
(``numba_kernel``'s Measured).

*Numerics.* ``Bᵀ``, ``Aᵀ`` are 0, ±1 and ``G``'s ½ are exact, so every
computed value is an ordinary sum with a few more roundings than the direct
one: ``V`` 2 levels of ±, ``U`` one rounding, the products' sums over ``C_in``
(as the direct sum's), ``Aᵀ M A`` 2 levels of 3-term ±. Each output uses only
its own 3×3 window of ``d`` (``Bᵀ`` rows 0-2 read patch rows 0-2, rows 1-3 rows
1-3), so the error is ``O(u)·Σ_ci Σ_ξ |U_ξ|·|V_ξ|`` ≤ ``O(u)·Σ_ci (Σ|g|)(Σ_window|d|)``:
the magnitude of *all* window × weight pairs, not of the aligned ones that make
``B``. For independent data it is ``~9·B`` where the tolerance model allows
``(1 + 4·√K)·u·B`` (compare.py Note [Tolerance model]; ``K = 9·C_in``), and
errors add like a random walk over ``C_in``, hence ``C_in`` at least 32. It
fails when large ``x`` and large ``w`` meet off each other's taps while the
aligned products are small: heavy tails in both (each element scaled by
``2^±20``: up to 40x the bound; Cauchy data: 120x). The guard, from the
statistics the path collects anyway: in every block of tiles (all its input
channels), ``max|x|·max|w| ≤ SPREAD·C_in·mean|x|·mean|w|`` (``SPREAD`` = 4,
means over the block's patches and all of ``w``; the error grows like that
ratio over ``C_in``; per block, so that other images or regions cannot hide
a heavy-tailed one in a global mean. For normal data the ratio is ~40, b1's
threshold 256). Measured (two random sweeps of 800 calls, an ad-hoc script
on tests/test_numba_winograd.py's helpers: ``C_in`` 32-128, ``C_out`` 16-64,
2-40 pixel sides, padding 0/1/2/asymmetric/SAME, both layouts, bias or not;
worst error / bound of the model, float32, calls the guard let through):
normal 0.06-0.07, uniform 0.06-0.08, x = 1000 + noise 0.05-0.06, x = ±1000 +
noise 0.05-0.08, weights 3 + 0.01·noise 0.08-0.10, channels scaled 2^±20
0.03-0.04, all positive 0.25-0.26 (the direct path: 0.29), heavy tails in x
or w alone, or 95% zeros, 0.02-0.09 (the guard sent most of those calls to
the direct path); with a global guard and ``SPREAD`` 16 (1,400 calls) the
worst were 0.52-0.64. float16/bfloat16 are dominated by the final rounding
(up to 0.5 on any path). Within a block (64 tiles: b1's 8 output rows) a
heavy-tailed patch among large ordinary values could still pass the guard:
no case file or fuzz fill makes such data (the fuzz never reaches 32
channels).

*Tap balance.* The spread guard sees magnitudes, not where they meet: an
output whose nonzero taps meet small (or padding) pixels while its zero taps
meet large ones has a small ``B`` and the large ones' roundings all the same.
Weights with a tap zero in every input channel did that on ordinary data:
PixelCNN's mask A with padding 1 gives ``B = 0`` at each image's top-left
output (a bound of 0) and ~2e-6 there; a 1x3 kernel as 3x3 with a row of
pixels scaled 1e-4, or Sobel's pattern with every other column scaled 1e-4,
180-190x the bound. The guard: per output channel, the taps' sums
``s_t = Σ_ci |w[co, ci, t]|``, ``min_t s_t ≥ BALANCE·max_t s_t`` (``BALANCE`` =
1/8; mask A with its zeros replaced by ``ε·w`` measured ~0.011/ε of the bound
at 32 channels; normal or uniform weights of 32-64 channels are above 0.43;
+5 µs of b1's 1.4 ms).

*Weighted by the data.* x confined to the channels whose taps are zero does
the same past that test (mask A on channels 0-7, x zero in channels 8-63:
``B = 0`` at the corner, ~2e-7 there). So the test also runs in every block
of tiles with ``s_t = Σ_ci m_ci·|w[co, ci, t]|``, ``m_ci`` the block's mean
``|d|`` in channel ``ci`` (``_channels_balanced``): for data that are a
spatial profile times per-channel scales it bounds the error's scale,
``B ≥ (β/9)·Σ_ci Σ_window|d|·Σ_t|w|`` for a balance ``β``. Per block, not per
call: the call's means pass when one image has all channels. The means are
``input_transform``'s sums, kept per channel (16 lanes each) and added after
the block's transforms; after the tasks, the balance weighted by ``M``, each
channel's largest block mean, bounds every block whose means are all at
least ``γ·M`` (balance ≥ ``γ`` times ``M``'s), and only the others are
computed (b1: γ 0.72-0.86, ``M``'s balance 0.62, none computed; 2.7 µs in
all, 1.7 per block computed). Cost on b1, this and the code before
alternated call by call in one process (medians of 1,200-3,000 pairs, load
2.7-8 from other jobs): one thread +0.4-1.3% of its CPU time (7-20 µs of
1.6 ms: the ``|w|`` rows +2 µs, the check 2.7, the per-channel sums the
rest; a float64 loop adding them had cost ~20 µs more); two threads' wall
time -2% to +1% (noise). Ordinary data keep the path (tests): normal, uniform,
ReLU, half the channels zero, channels scaled by ``e^N(0,1)`` (the weighted
balance of normal weights at 32-128 channels measured ≥ 0.15; scales
``e^N(0,2)`` or 10% of the channels alive often fall back). Open: confinement
finer than a block (64 tiles, b1's 8 output rows), e.g. channels 8-63 zero
only in an image's first 11 of 24 rows, passes (the block's means see them)
and the corner's ``B = 0`` is missed; so can data not of that product form
within a block.

Underflow: the model allows one ``u·λ`` per product (``K`` of them per
output). Each output here also has exactly ``9·C_in`` products; ``Bᵀ d B`` and
``Aᵀ M A`` are additions (exact when subnormal); ``U``'s ¼ and ½ are exact for
weights that are multiples of ``2^-123`` (every float32 ≥ ``2^-100``): their
combinations are 0 or at least ``2^-125``, normal. So the call falls back
when a nonzero ``|w|`` (or, to stay on the safe side, ``|x|``) is below
``SMALLEST`` = ``2^-100``. Overflow: ``|U| ≤ 2.25·max|w|``, ``|V| ≤ 4·max|x|``, every
intermediate below ``81·C_in·max|x|·max|w|``, so with ``max|x|·max|w| ≤ 2^100``
(``SAFE_PRODUCT``) and ``max|x|``, ``max|w| ≤ 2^124`` (``LARGEST``: ``V`` and
``U`` themselves; ``x`` = ±3e38 with ``w`` ~ 2^-40 made NaN) nothing overflows
(and the direct sum cannot either); above it, fall back. The float32 lane
sums of ``|d|`` (per channel and block, then added in float64) can overflow
near ``LARGEST``: an infinite mean fails the guards. Non-finite values: ``Bᵀ d B`` turns
``inf − inf`` into NaN where the definition has ``±inf``: any inf or NaN in
``x`` or ``w`` falls back. The statistics come from the passes the path makes anyway
(``input_transform`` keeps them over the patches it reads, the weight
transform computes them); on a fallback the direct path recomputes the call
(input values no output reads are not checked: the definition has no term
with them either).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from harness.kernels.gemm_tiles import GEMM_R, gemm_block, gemm_sweep
from harness.kernels.tasks import claim
from harness.kernels.winograd_tiles import WINO_LANES, input_transform, output_transform, store_pairs

__all__ = ["BALANCE", "LARGEST", "MIN_CIN", "MIN_COUT", "MIN_TILES", "SAFE_PRODUCT", "SMALLEST", "SPREAD",
           "aw_size", "transform_weights", "u_size", "winograd", "winograd_buffer_size", "winograd_fits",
           "winograd_layout", "winograd_safe", "x_limit"]

MIN_CIN = 32                # input channels at least this (Note: numerics and speed)
MIN_COUT = 32               # output channels at least this (speed: see numba_kernel's Measured)
MIN_TILES = 512             # 2×2 output tiles in the call (all images) at least this: U is made per call
SAFE_PRODUCT = 2.0 ** 100   # max|x|·max|w| at most this: nothing overflows (Note)
SMALLEST = 2.0 ** -100      # nonzero |x| and |w| at least this: no underflow in U (Note)
SPREAD = 4                  # max|x|·max|w| / (mean|x|·mean|w|) at most this times C_in, per block (Note)
LARGEST = 2.0 ** 124        # |x| and |w| at most this: 4·|x| (V) and 2.25·|w| (U) stay finite in float32 (Note)
BALANCE = 0.125             # every output channel's least tap sum Σ_ci|w| at least this times its largest (Note)
_V_BYTES = 512 << 10        # a task's transformed input V at most this (L2, with U's panels)


def winograd_fits(cig, cog, groups, kh, kw, sh, sw, dh, dw, dtype, nbatch, hout, wout) -> bool:
    """Whether a call's parameters suit the Winograd path (see the Note; the thresholds are read at each call)."""
    return (groups == 1 and kh == kw == 3 and sh == sw == 1 and dh == dw == 1 and dtype != "float64"
            and cig >= MIN_CIN and cog >= MIN_COUT and nbatch * -(-hout // 2) * -(-wout // 2) >= MIN_TILES)


def winograd_layout(nbatch, cin, hout, wout, threads):
    """``(NB, tasks)``: tile vectors per task (4, 2 or 1: ``V`` within ``_V_BYTES``, and at least two tasks per
    thread where smaller blocks allow) and the number of tasks."""
    tiles = -(-hout // 2) * -(-wout // 2)
    nb = 4
    while nb > 1 and 16 * cin * nb * WINO_LANES * 4 > _V_BYTES:
        nb //= 2
    while nb > 1 and nbatch * -(-tiles // (nb * WINO_LANES)) < 2 * threads:
        nb //= 2
    return nb, nbatch * -(-tiles // (nb * WINO_LANES))


def winograd_buffer_size(cin, nb):
    """Elements of a thread's buffer: ``V``, the products ``M`` (with ``L`` of slack) and the output stage."""
    t = nb * WINO_LANES
    return 16 * (cin * t + WINO_LANES) + 16 * GEMM_R[nb] * t + 5 * WINO_LANES


@njit(cache=True, inline="always")
def _g_row(a, b, c):
    """``G (a, b, c)ᵀ``: ``(a, (a + b + c)/2, (a − b + c)/2, c)``."""
    return a, 0.5 * (a + b + c), 0.5 * (a - b + c), c


@njit(parallel=True, cache=True)
def _transform_weights(w, u, aw):
    """``u[(4i + j)·ust + co·C_in + ci] = (G w[co, ci] Gᵀ)[i, j]`` in float64, rounded once (``ust`` =
    ``u.size / 16``: ``C_out·C_in`` and a cache line, as ``V``'s planes), and ``aw[(9·co + t)·C_in + ci] =
    |w[co, ci, t]|`` (the tap balance's rows, ``_tap_balance``); returns ``(largest |w|, smallest nonzero |w|,
    mean |w|, least balance of the taps' sums Σ_ci |w|)``, the largest inf if a weight is inf or NaN. Scalars
    and no branches in the ``ci`` loop (a scratch array and branches for the statistics: b1 0.13 ms on one
    thread, this 0.055)."""
    cout, cin = w.shape[0], w.shape[1]
    ust = u.size // 16
    wf = w.reshape(cout, cin * 9)
    big = np.zeros(cout)
    small = np.full(cout, np.inf)
    sums = np.zeros(cout)
    balance = np.ones(cout)
    for co in prange(cout):
        row = wf[co]
        hi = 0.0
        lo = np.inf
        total = 0.0
        nonfinite = 0.0
        taps = np.zeros(9)
        for ci in range(cin):
            g = row[9 * ci:9 * ci + 9]
            for k in range(9):
                v = np.float64(g[k])
                m = abs(v)
                nonfinite += v * 0.0                     # NaN once a value is inf or NaN
                hi = max(hi, m)
                lo = min(lo, m if m > 0.0 else np.inf)
                total += m
                taps[k] += m
                aw[(9 * co + k) * cin + ci] = abs(g[k])
            # G g by columns, then (G g) Gᵀ by rows: row i of G g is (c0[i], c1[i], c2[i])
            c0 = _g_row(np.float64(g[0]), np.float64(g[3]), np.float64(g[6]))
            c1 = _g_row(np.float64(g[1]), np.float64(g[4]), np.float64(g[7]))
            c2 = _g_row(np.float64(g[2]), np.float64(g[5]), np.float64(g[8]))
            base = co * cin + ci
            for i in range(4):
                r = _g_row(c0[i], c1[i], c2[i])
                for j in range(4):
                    u[(4 * i + j) * ust + base] = r[j]
        big[co] = hi if nonfinite == 0.0 else np.inf
        small[co] = lo
        sums[co] = total
        top = taps.max()
        balance[co] = taps.min() / top if top > 0.0 else 1.0
    return (big.max() if cout else 0.0, small.min() if cout else np.inf, sums.sum() / max(1, w.size),
            balance.min() if cout else 1.0)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _tap_balance(aw, m, cout, cin, floor):
    """The least over output channels ``co`` of ``min_t s_t / max_t s_t``, ``s_t = Σ_ci m[ci]·aw[(9·co + t)·C_in
    + ci]`` (1 where every ``s_t`` is 0); below ``floor`` it returns the first such channel's (not the least)."""
    least = 1.0
    for co in range(cout):
        lo = np.inf
        hi = 0.0
        for t in range(9):
            base = (9 * co + t) * cin
            s = np.float32(0.0)
            for ci in range(cin):
                s += m[ci] * aw[base + ci]
            lo = min(lo, np.float64(s))
            hi = max(hi, np.float64(s))
        if hi > 0.0:
            least = min(least, lo / hi)
            if not least >= floor:                       # NaN fails too
                return least
    return least


@njit(cache=True)
def _channels_balanced(cm, aw, cout, cin, floor):
    """Whether every block's (row of ``cm``: its per-channel mean ``|d|``) tap balance ``_tap_balance`` is at
    least ``floor``. With ``M`` the channels' largest means over the blocks, a block whose means are all at
    least ``γ·M`` has a balance of at least ``γ`` times ``M``'s (its ``s_t`` lie between ``γ·S_t`` and ``S_t``):
    only the blocks that bound leaves unsettled are computed."""
    nblk = cm.shape[0]
    top = np.zeros(cin, dtype=np.float32)
    for b in range(nblk):
        for ci in range(cin):
            top[ci] = max(top[ci], cm[b, ci])
    whole = _tap_balance(aw, top, cout, cin, floor)
    inv = np.zeros(cin, dtype=np.float32)
    for ci in range(cin):
        if top[ci] > 0.0:
            inv[ci] = 1.0 / top[ci]
    for b in range(nblk):
        gamma = np.float32(1.0)
        for ci in range(cin):
            gamma = min(gamma, cm[b, ci] * inv[ci] if top[ci] > 0.0 else np.float32(1.0))
        if not gamma * whole >= floor and not _tap_balance(aw, cm[b], cout, cin, floor) >= floor:
            return False
    return True


@njit(cache=True, inline="always")
def _lane_sum(sums):
    """``Σ sums[:16]`` (float32) as a float64, added as a tree (a float64 loop, even with reassociation
    allowed, cost b1 ~20 µs on one thread, this ~0)."""
    a0 = (sums[0] + sums[8]) + (sums[4] + sums[12])
    a1 = (sums[1] + sums[9]) + (sums[5] + sums[13])
    a2 = (sums[2] + sums[10]) + (sums[6] + sums[14])
    a3 = (sums[3] + sums[11]) + (sums[7] + sums[15])
    return np.float64((a0 + a2) + (a1 + a3))


@njit(cache=True)
def _winograd_task(task, x, u, biasp, out, buf, nhwc, top, left, nb, stats, lanes, sums, xlimit, cm):
    """One image's block ``task`` of ``NB·L`` tiles (see the Note): transform, products, back to the output.
    ``stats`` (2 uint32): the thread's largest ``|x|`` bits and smallest nonzero bits less 1, updated; ``lanes``,
    ``sums`` (``L`` per channel): ``input_transform``'s statistics, reset here; ``cm`` (C_in) set to the block's
    mean ``|d|`` per channel (per tile's patch). Returns whether the block's largest ``|x|`` is at most ``xlimit``
    times its mean (the spread guard, per block)."""
    nbatch, cin, h, wd = x.shape
    cout = out.shape[3] if nhwc else out.shape[1]
    ust = u.size // 16
    if nhwc:
        hout, wout = out.shape[1], out.shape[2]
    else:
        hout, wout = out.shape[2], out.shape[3]
    th, tw = (hout + 1) // 2, (wout + 1) // 2
    t_blk = nb * WINO_LANES
    nblk = (th * tw + t_blk - 1) // t_blk
    n = task // nblk
    m0 = (task - n * nblk) * t_blk
    pe = min(t_blk, th * tw - m0)
    ty_lo, ty_hi = m0 // tw, (m0 + pe - 1) // tw
    rmax = GEMM_R[nb]
    # V[ξ, ci, tile] at ξ·vst + ci·T + tile: ξ planes a cache line more than C_in·T apart (b1: 16 KB), or the
    # 16 streams of each transform share one set of L1 (input side 0.43 -> 0.12 ms on one thread)
    vst = cin * t_blk + WINO_LANES
    vb = buf[:16 * vst]
    mb = buf[16 * vst:]
    stage = mb[16 * rmax * t_blk + WINO_LANES:]
    # the block's runs: (offset in the block, tile row, first tile column, tiles), each within a tile row, <= L
    runs = np.empty((pe // WINO_LANES + 2 * (ty_hi - ty_lo + 1) + 1, 4), dtype=np.int64)
    nruns = 0
    m = m0
    while m < m0 + pe:
        ty = m // tw
        tx = m - ty * tw
        cnt = min(tw - tx, m0 + pe - m, WINO_LANES)
        runs[nruns, 0], runs[nruns, 1], runs[nruns, 2], runs[nruns, 3] = m - m0, ty, tx, cnt
        nruns += 1
        m += cnt
    # V: channel by channel, each run's patches read from the input plane (zero outside it)
    xf = x.reshape(x.size)
    lanes[:WINO_LANES] = 0
    lanes[WINO_LANES:] = 0xFFFFFFFF
    sums[:] = 0
    for ci in range(cin):
        plane = (n * cin + ci) * h * wd
        csums = sums[ci * WINO_LANES:(ci + 1) * WINO_LANES]
        for k in range(nruns):
            input_transform(xf, plane, 2 * runs[k, 1] - top, h, wd, 2 * runs[k, 2] - left, vb,
                            ci * t_blk + runs[k, 0], vst, runs[k, 3], lanes, csums)
    total = 0.0
    for ci in range(cin):                               # after the channels: off the transforms' path
        c = _lane_sum(sums[ci * WINO_LANES:(ci + 1) * WINO_LANES])
        cm[ci] = c / pe
        total += c
    big = lanes[:WINO_LANES].max()
    stats[0] = max(stats[0], big)
    stats[1] = min(stats[1], lanes[WINO_LANES:].min())
    bits = np.empty(1, dtype=np.uint32)
    bits[0] = big
    mean = total / (16 * cin * pe)
    # a channel's float32 lane sums overflow for |x| near float32's largest: inf would pass any limit
    spread_ok = big == 0 or (mean < np.inf and bits.view(np.float32)[0] <= xlimit * mean)
    if pe < t_blk:                                      # tiles of a partial block: zero, not stale
        for q in range(16):
            vb[q * vst:q * vst + cin * t_blk].reshape(cin, t_blk)[:, pe:] = 0
    nbl = 1 if pe <= WINO_LANES else (2 if pe <= 2 * WINO_LANES else nb)
    plane = hout * wout
    oflat = out.reshape(out.size)
    co = 0
    while co < cout:
        r = gemm_block(nbl, cout - co)
        for q in range(16):
            gemm_sweep(mb[q * rmax * t_blk:], u, q * ust + co * cin, cin, vb, q * vst, t_blk, cin, r, nbl)
        for rr in range(r):
            oc = co + rr
            for k in range(nruns):
                off, ty, tx, cnt = runs[k, 0], runs[k, 1], runs[k, 2], runs[k, 3]
                output_transform(mb, rr * nbl * WINO_LANES + off, rmax * t_blk, biasp[oc], stage)
                y, xo = 2 * ty, 2 * tx
                nr = min(2, hout - y)
                nc = min(2 * cnt, wout - xo)
                if nhwc:
                    for i in range(nr):
                        for c in range(nc):
                            oflat[((n * hout + y + i) * wout + xo + c) * cout + oc] = stage[
                                (2 * i + c % 2) * WINO_LANES + c // 2]
                else:
                    store_pairs(stage, oflat, (n * cout + oc) * plane + y * wout + xo, wout, nc, nr)
        co += r
    return spread_ok


@njit(parallel=True, cache=True)
def winograd(x, u, aw, biasp, out, work, nhwc, top, left, nb, ntasks, nthreads, xlimit, balance):
    """``out`` = the convolution of ``x`` (float32, NCHW) with the weights ``u`` that ``transform_weights``
    made (``aw`` its ``|w|`` rows), ``biasp`` the bias; ``ntasks`` tasks claimed by ``nthreads`` threads with
    ``winograd_buffer_size`` elements of ``work`` each. Returns the statistics of the caller's fallback test
    (see the Note) over the values the patches read: ``(largest |x|`` (inf or NaN if one is inf or NaN),
    ``smallest nonzero |x|, whether every block's largest |x| is at most xlimit times its mean, whether every
    block's taps weighted by its channels' mean |x| are within balance)``, the means over the blocks' patches,
    padding zeros included."""
    size = work.shape[0] // nthreads
    counter = np.zeros(1, dtype=np.int64)
    allstats = np.zeros((nthreads, 2), dtype=np.uint32)
    lanes = np.zeros((nthreads, 2 * WINO_LANES), dtype=np.uint32)
    cin = x.shape[1]
    sums = np.zeros((nthreads, cin * WINO_LANES), dtype=np.float32)
    spread = np.ones(nthreads, dtype=np.bool_)
    cm = np.zeros((ntasks, cin), dtype=np.float32)
    for th in prange(nthreads):
        buf = work[th * size:(th + 1) * size]
        stats = allstats[th]
        stats[1] = 0xFFFFFFFF
        task = claim(counter)
        while task < ntasks:
            if not _winograd_task(task, x, u, biasp, out, buf, nhwc, top, left, nb, stats, lanes[th], sums[th],
                                  xlimit, cm[task]):
                spread[th] = False
            task = claim(counter)
    big = allstats[:, 0].max()
    small = allstats[:, 1].min()
    # (not np.array([big]): Numba's rewrite of constant array literals failed, "key already in dictionary:
    # '$np_g_var.1'", when this compiled after some other functions in a process)
    bits = np.empty(2, dtype=np.uint32)
    bits[0], bits[1] = big, small + np.uint32(1)                    # 0 + 1: none nonzero -> wraps
    hi, lo = bits.view(np.float32)[0], bits.view(np.float32)[1]
    cout = out.shape[3] if nhwc else out.shape[1]
    return (np.float64(hi), (np.inf if small == np.uint32(0xFFFFFFFF) else np.float64(lo)), spread.all(),
            _channels_balanced(cm, aw, cout, cin, balance))


def transform_weights(w, u, aw):
    """``(largest, smallest nonzero, mean) |w|`` and the tap balance (``_transform_weights``) for ``w`` (C_out,
    C_in, 3, 3) float32, its transform in ``u`` (``u_size`` float32: 16 planes of ``C_out × C_in`` a cache line
    apart, see ``_transform_weights``) and its ``|w|`` by output channel, tap and input channel in ``aw``
    (``aw_size`` float32)."""
    return _transform_weights(w, u, aw)


def u_size(cout, cin):
    """Elements of the transformed weights (a multiple of 16: work memory after it stays aligned)."""
    return 16 * (cout * cin + WINO_LANES)


def aw_size(cout, cin):
    """Elements of ``transform_weights``' ``|w|`` rows (a multiple of 16, as ``u_size``)."""
    return -(-9 * cout * cin // WINO_LANES) * WINO_LANES


def x_limit(wstats, cin) -> float:
    """The spread guard's bound on ``max|x| / mean|x|`` of a block (Note): ``SPREAD·C_in·mean|w| / max|w|``."""
    whi, _, wmean, _ = wstats
    return SPREAD * cin * wmean / whi if 0 < whi < np.inf else np.inf


def winograd_safe(xstats, wstats) -> bool:
    """Whether the data allow the Winograd result (Note): all finite, no magnitude above ``LARGEST``, no
    product above ``SAFE_PRODUCT``, no nonzero magnitude below ``SMALLEST``, every output channel's taps within
    ``BALANCE``, every block within the spread guard and its taps weighted by its channels within ``BALANCE``
    (``winograd``'s third and fourth)."""
    (xhi, xlo, spread_ok, xbal_ok), (whi, wlo, _, wbal) = xstats, wstats
    return bool(np.isfinite(xhi) and np.isfinite(whi) and max(xhi, whi) <= LARGEST and xhi * whi <= SAFE_PRODUCT
                and min(xlo, wlo) >= SMALLEST and wbal >= BALANCE and spread_ok and xbal_ok)
