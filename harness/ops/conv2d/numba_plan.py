"""The ``numba`` conv2d kernel's call plans: a call's checks and layout decisions, once per shape.

Everything ``numba_kernel.conv2d`` works out before its kernels run (the
parameters' checks, the path, thread count, tile and buffer sizes) depends only
on the operands' shapes, the call's parameters and Numba's thread count, so
``plan`` keeps the result per such key. The Python around the kernels runs
cold (the operands' conversion just evicted it): on conv2d b2 it was ~0.09 of
0.42 ms on one thread. With the plans kept, b2 0.417-0.422 → 0.396-0.404 ms
(one thread, CPU time, kept and made afresh interleaved in one process,
operands converted before each call, medians of 400 calls, load 2); b1 4.69 →
4.60 ms the same way, but no change across processes (8 alternating runs of
this branch and the one before: medians 4.04 and 4.03 ms). The data-dependent
checks (non-finite weights) stay per call.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from harness.kernels.tasks import chunk_count
from harness.kernels.tiles import MAX_PIX
from harness.ops.conv2d.numba_gemm import gemm_buffer_size, gemm_layout
from harness.ops.conv2d.numba_pixels import pixel_planes_size
from harness.ops.conv2d.numba_winograd import winograd_buffer_size, winograd_fits, winograd_layout

__all__ = ["BAND_BYTES", "GEMM", "PIXELS", "ROWS", "WINOGRAD", "Plan", "band", "plan"]

PIXELS, GEMM, ROWS, WINOGRAD = "pixels", "gemm", "rows", "winograd"
BAND_BYTES = 1 << 20    # packed input band per thread (rows path): about half of a 2 MB L2
_FEW_CHANNELS = 4       # Cog at or below this: vectorise over pixels instead of channels
_GEMM_MAX_W = 16        # output rows at most this wide may use the im2col path
_MAX_PLANS = 4096       # plans kept (a fuzz run's shapes); all dropped past it


class Plan(NamedTuple):
    path: str
    stride: tuple
    dilation: tuple
    top: int
    left: int
    out_shape: tuple
    cout: int
    lanes: int
    nthreads: int
    size: int           # work elements per thread
    nchunks: int        # pixels, rows: chunks of work; gemm: channel chunks per block
    nb: int             # gemm: pixel vectors per block; rows: channel vectors per tile; winograd: tile vectors
    ntasks: int         # gemm, winograd
    wp_shape: tuple     # rows: the repacked weights
    band_layout: tuple  # rows: band()'s (seg, reach, block), which the kernel is given (not its own band() call)
    fallback: "Plan | None" = None   # winograd: the plan of the direct path, for data it must not transform


_PLANS: dict = {}


def plan(xshape, wshape, bshape, stride, dilation, groups, pads, out_hw, layout, dtype, threads, nb_rows) -> Plan:
    """The plan of a call (``ValueError`` if its parameters are invalid), from the cache when it has one."""
    key = (xshape, wshape, bshape, stride, dilation, groups, pads, out_hw, layout, dtype, threads, nb_rows)
    try:
        found = _PLANS.get(key)
    except TypeError:                                   # an unhashable parameter (a list): not kept
        return _plan(*key)
    if found is None:
        found = _plan(*key)
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = found
    return found


def _plan(xshape, wshape, bshape, stride, dilation, groups, pads, out_hw, layout, dtype, threads, nb_rows,
          winograd=True) -> Plan:
    if len(xshape) != 4 or len(wshape) != 4:
        raise ValueError(f"x and w must be 4-D, got shapes {xshape} and {wshape}")
    sh, sw = _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    groups = int(groups)
    nbatch, cin, h, wd = xshape
    cout, cig, kh, kw = wshape
    if groups < 1 or cin % groups or cig != cin // groups or cout % groups:
        raise ValueError(f"x has {cin} channels, w has shape {wshape}: need C_in and C_out divisible by "
                         f"groups={groups} and w.shape[1] == C_in / groups")
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel must be at least 1x1, got {kh}x{kw}")
    top, left = int(pads[0]), int(pads[2])
    hout, wout = int(out_hw[0]), int(out_hw[1])
    if top < 0 or left < 0 or hout < 0 or wout < 0:
        raise ValueError(f"pads and out_hw must be >= 0, got {tuple(pads)} and {tuple(out_hw)}")
    if bshape is not None and bshape != (cout,):
        raise ValueError(f"bias must have shape ({cout},), got {bshape}")
    lanes, itemsize = (8, 8) if dtype == "float64" else (16, 4)
    out_shape = (nbatch, hout, wout, cout) if layout == "NHWC" else (nbatch, cout, hout, wout)
    common = dict(stride=(sh, sw), dilation=(dh, dw), top=top, left=left, out_shape=out_shape, cout=cout,
                  lanes=lanes)
    cog = cout // groups
    if winograd and winograd_fits(cig, cog, groups, kh, kw, sh, sw, dh, dw, dtype, nbatch, hout, wout):
        nb, ntasks = winograd_layout(nbatch, cin, hout, wout, threads)
        direct = _plan(xshape, wshape, bshape, stride, dilation, groups, pads, out_hw, layout, dtype, threads,
                       nb_rows, winograd=False)
        return Plan(WINOGRAD, **common, nthreads=max(1, min(ntasks, threads)),
                    size=winograd_buffer_size(cin, nb), nchunks=0, nb=nb, ntasks=ntasks,
                    wp_shape=(), band_layout=(), fallback=direct)
    if _pixel_path(cog, wout, lanes, nbatch * groups, threads):
        nthreads = max(1, min(nbatch * groups, threads))
        size = pixel_planes_size(cig, h, wd, hout, wout, kh, kw, sh, sw, dh, dw, top, left, lanes)[2]
        return Plan(PIXELS, **common, nthreads=nthreads, size=size, nchunks=chunk_count(nbatch * groups, nthreads),
                    nb=0, ntasks=0, wp_shape=(), band_layout=())
    if wout <= _GEMM_MAX_W and kh * kw * cig * lanes * itemsize > 32 << 10:
        # Narrow rows, and the weight panel of one channel vector over half of L1 (re-streamed for every
        # few pixels of a row by channel tiles): im2col blocks, the weights read in place (numba_gemm).
        nb, chunks, ntasks = gemm_layout(nbatch, groups, cog, hout, wout, lanes, threads, kh * kw * cig, itemsize)
        size = gemm_buffer_size(cig, h, wd, hout, wout, kh, kw, sh, sw, dh, dw, left, nb * lanes)
        return Plan(GEMM, **common, nthreads=min(ntasks, threads), size=size, nchunks=chunks, nb=nb, ntasks=ntasks,
                    wp_shape=(), band_layout=())
    nthreads = max(1, min(nbatch * hout, threads))
    seg, reach, block, size = band(cin, h, wd, wout, kh, kw, sh, sw, dh, dw, left, itemsize)
    return Plan(ROWS, **common, nthreads=nthreads, size=size,
                nchunks=chunk_count(nbatch * hout, nthreads), nb=nb_rows, ntasks=0,
                wp_shape=(groups, kh * kw * cig * (-(-cog // lanes) * lanes)), band_layout=(seg, reach, block))


@njit(cache=True)
def band(cin, h, wd, wout, kh, kw, sh, sw, dh, dw, left, itemsize):
    """Layout of a thread's packed input band (rows path): ``(seg, reach, block, band elements)``.

    Output rows are done in blocks whose input band (all channels) fits ~1 MB of L2: the band is
    packed channel by channel, so the input is read sequentially (a row at a time from every
    channel defeats the hardware prefetcher), and every tap reads it from cache.
    """
    qw = ((kw - 1) * dw) // sw                          # furthest tap offset, in phase positions
    seg = max(wout + qw, (left + wd - 1) // sw + 1) + MAX_PIX   # one phase of a packed row
    reach = (kh - 1) * dh + 1                           # input rows one output row can read
    per_row = cin * sw * seg
    block = max(1, ((BAND_BYTES // itemsize) // per_row - reach) // sh + 1)
    return seg, reach, block, min(h, (block - 1) * sh + reach) * per_row


def _pair(v, name):
    # isinstance, not np.ndim(v), which makes an array of the tuple: 23 of a call's ~100 µs of Python (b2, cold)
    a, b = (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(t) for t in v)
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be >= 1, got {v!r}")
    return a, b


def _pixel_path(cog, wout, lanes, tasks, threads):
    """Vectors over pixels (numba_pixels) rather than over output channels: for few channels per
    group, or when rows fill at least as much of each vector as the channels do (e.g. 8 channels,
    16-pixel rows; or one vector of channels and rows of whole vectors, where the channel tile
    issues a broadcast load per multiply-add: b3 12.4 → 11.8 ms on one thread) — given ``tasks``
    (images × groups, the pixel path's unit of parallel work) for every thread."""
    if cog <= _FEW_CHANNELS:
        return True
    if cog > lanes or tasks < threads:
        return False
    fill = wout / (-(-wout // lanes) * lanes)
    return fill >= cog / lanes if cog == lanes else fill > cog / lanes
