"""``conform backends --prepare`` warms Numba's cache: after ``warm()``, a new process compiles nothing.

Two fresh processes share Numba's own cache (the one ``make setup`` warmed, so
``warm()`` here only loads, unless a kernel changed since): the first runs the
numba backend's ``warm()``, the second calls the convolution kernels on every path (rows,
im2col blocks, pixel vectors, Winograd, the transposed kernel, the exact fallbacks for
non-finite weights) and both pooling kernels, in every dtype and layout, on shapes, strides, paddings,
dilations, groups and biases other than ``warm()``'s own, and reads every
dispatcher's cache counters. A kernel signature ``warm()`` misses shows up as
a cache miss (a compilation) in the second process — the first time after the
kernels change, which is every fresh checkout (CI), where ``make setup`` warmed
the cache just before; later runs find the probe's own compilations cached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("numba")

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import importlib, json
    import numpy as np
    from harness.ops.conv2d.numba_kernel import conv2d
    from harness.ops.conv2d_transpose.numba_kernel import conv2d_transpose

    rng = np.random.default_rng(1)
    calls = [   # x shape, w shape, groups, stride, dilation, pads; out_hw = the explicit-padding size
        (conv2d, (2, 6, 5, 21), (40, 3, 3, 2), 2, (2, 1), (1, 2), (1, 0, 2, 1)),           # rows
        (conv2d, (1, 96, 7, 7), (48, 96, 3, 3), 1, (2, 2), (1, 1), (1, 1, 1, 1)),          # im2col blocks
        (conv2d, (2, 6, 9, 9), (12, 1, 3, 3), 6, (1, 1), (2, 2), (2, 2, 2, 2)),            # pixel vectors
        (conv2d, (1, 40, 46, 50), (32, 40, 3, 3), 1, (1, 1), (1, 1), (0, 2, 1, 0)),        # Winograd
        (conv2d_transpose, (2, 6, 4, 5), (6, 5, 2, 3), 2, (2, 3), (1, 2), (1, 0, 0, 1)),    # pixel vectors
        (conv2d_transpose, (1, 3, 4, 3), (3, 20, 3, 2), 1, (2, 1), (1, 1), (1, 0, 0, 1)),   # channel tiles
    ]
    for fn, xs, ws, groups, s, d, p in calls:
        x = rng.standard_normal(xs)
        for dtype in ("float16", "bfloat16", "float32", "float64"):
            for layout in ("NCHW", "NHWC"):
                for finite in (True, False):
                    w = rng.standard_normal(ws)
                    if not finite:
                        w[0, 0, 0, 0] = np.inf
                    if fn is conv2d:
                        out = tuple((xs[2 + a] + p[2 * a] + p[2 * a + 1] - (ws[2 + a] - 1) * d[a] - 1) // s[a] + 1
                                    for a in (0, 1))
                        bias = None if finite else rng.standard_normal(ws[0])
                        fn(x, w, bias, stride=s, dilation=d, groups=groups, pads=p, out_hw=out, layout=layout,
                           dtype=dtype)
                    else:
                        out = tuple((xs[2 + a] - 1) * s[a] + (ws[2 + a] - 1) * d[a] + 1 - p[2 * a] - p[2 * a + 1]
                                    for a in (0, 1))
                        bias = None if finite else rng.standard_normal(ws[1] * groups)
                        fn(x, w, bias, stride=s, dilation=d, groups=groups, crops=p, out_hw=out, layout=layout,
                           dtype=dtype)
    from harness.kernels.convert import compute_operand
    from harness.ops.avg_pool2d.numba_kernel import avg_pool2d
    from harness.ops.max_pool2d.numba_kernel import max_pool2d
    import numba
    from harness.kernels import threads
    threads._load = lambda: None                     # the team asked for, whatever the machine's load
    threads._stalled = lambda wall, cpu: False
    threads._STALLS["left"] = 0
    x = rng.standard_normal((2, 3, 9, 20))
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        for layout in ("NCHW", "NHWC"):
            numba.set_num_threads(1 if layout == "NHWC" else numba.config.NUMBA_NUM_THREADS)   # the serial loop too
            compute_operand(rng.standard_normal((3, 5, 7, 2)), np.float32)
            # kernel, stride, pads, out_hw (undilated), dilation, out_hw (dilated)
            for k, s, p, out, d, dilated in (((3, 2), (1, 2), (1, 1, 0, 1), (9, 10), (2, 1), (7, 10)),
                                             ((7, 7), (7, 7), (0, 0, 0, 0), (1, 2), (1, 1), (1, 2))):
                max_pool2d(x, kernel=k, stride=s, dilation=d, pads=p, out_hw=dilated, layout=layout, dtype=dtype)
                avg_pool2d(x, kernel=k, stride=s, pads=p, out_hw=out, count_include_pad=dtype == "float32",
                           layout=layout, dtype=dtype)
    counts = {}
    for name in ("harness.kernels.convert", "harness.ops.max_pool2d.numba_kernel",
                 "harness.ops.avg_pool2d.numba_kernel",
                 "harness.ops.conv2d.numba_kernel", "harness.ops.conv2d.numba_gemm",
                 "harness.ops.conv2d.numba_pixels", "harness.ops.conv2d.numba_weights",
                 "harness.ops.conv2d.numba_winograd",
                 "harness.ops.conv2d_transpose.numba_kernel", "harness.ops.conv2d_transpose.numba_pixels",
                 "harness.ops.conv2d_transpose.numba_weights",
                 "harness.kernels.tiles", "harness.kernels.pixel_tiles", "harness.kernels.gemm_tiles",
                 "harness.kernels.winograd_tiles",
                 "harness.kernels.packing"):
        for value in vars(importlib.import_module(name)).values():
            if hasattr(value, "py_func") and hasattr(value, "stats") and value.__module__ == name:
                counts[f"{name}.{value.__name__}"] = (sum(value.stats.cache_hits.values()),
                                                      sum(value.stats.cache_misses.values()))
    print(json.dumps(counts))
""")


def _run(code: str, **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environment}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_after_warm_a_new_process_loads_every_kernel_from_the_cache():
    warmed = _run("from harness.backends.numba_kernel import NumbaBackend; NumbaBackend.warm()")
    assert warmed.returncode == 0, warmed.stderr
    probe = _run(PROBE)
    assert probe.returncode == 0, probe.stderr
    counts = json.loads(probe.stdout.strip().splitlines()[-1])
    compiled = {name: misses for name, (_, misses) in counts.items() if misses}
    assert not compiled, f"compiled in the new process (not warmed): {compiled}"
    # Every entry point the kernels call from Python was loaded from the cache, not merely left unused.
    entry = ["conv2d.numba_kernel._kernel", "conv2d.numba_kernel._direct_exact", "conv2d.numba_gemm.gemm",
             "conv2d.numba_pixels.pixel_tiles", "conv2d.numba_weights.pack_weights",
             "conv2d.numba_winograd.winograd", "conv2d.numba_winograd._transform_weights",
             "conv2d_transpose.numba_kernel._kernel", "conv2d_transpose.numba_weights.pack_transposed_weights",
             "conv2d_transpose.numba_kernel._scatter_exact", "conv2d_transpose.numba_pixels.transposed_pixels",
             "max_pool2d.numba_kernel._kernel", "avg_pool2d.numba_kernel._kernel",
             "max_pool2d.numba_kernel._serial",
             "avg_pool2d.numba_kernel._serial"]
    assert counts["harness.kernels.convert._convert"][0] >= 1, counts
    for name in entry:
        # both compute dtypes (Winograd: float32 only)
        assert counts[f"harness.ops.{name}"][0] >= (1 if "winograd" in name else 2), (name, counts)


ORACLE_PROBE = textwrap.dedent("""
    import json
    import numpy as np
    from harness.ops.avg_pool2d import oracle as avg
    from harness.ops.conv2d import oracle as conv
    from harness.ops.conv2d_transpose import oracle as transpose

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 7, 9))
    for layout in ("NCHW", "NHWC"):
        for threads in (1, 2):
            conv.reference({"groups": 6, "stride": [2, 1], "padding": "same", "layout": layout},
                           {"x": x, "w": rng.standard_normal((12, 1, 3, 2)), "b": rng.standard_normal(12)},
                           threads=threads)
            transpose.reference({"groups": 3, "stride": 2, "dilation": [1, 2], "padding": [1, 0, 2, 1],
                                 "layout": layout}, {"x": x, "w": rng.standard_normal((6, 2, 3, 3))}, threads=threads)
            avg.reference({"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "layout": layout},
                          {"x": x[:, :, ::2]})
            # Dense: kernel columns gathered, BLAS products through the kernel rows, the rows added, by the
            # compiled loops; stride 2: BLAS products through every tap, added by the compiled loops.
            conv.reference({"dilation": 2, "padding": "same", "layout": layout},
                           {"x": x, "w": rng.standard_normal((2, 6, 3, 3))}, threads=threads)
            transpose.reference({"dilation": 2, "padding": "same", "layout": layout},
                                {"x": x, "w": rng.standard_normal((6, 4, 3, 3))}, threads=threads)
            for x_dtype in (np.float64, np.float32):    # every tap gathered, from x's column phases
                conv.reference({"stride": 2, "padding": 1, "layout": layout},
                               {"x": x.astype(x_dtype), "w": rng.standard_normal((3, 6, 2, 2))}, threads=threads)
            transpose.reference({"stride": [1, 2], "padding": 1, "layout": layout},
                                {"x": x, "w": rng.standard_normal((6, 4, 2, 3)), "b": np.ones(4)}, threads=threads)
    counts = {}
    for module, loops in ((conv, conv._sum_loops), (conv, conv._gather_columns), (conv, conv._add_rows),
                          (conv, conv._gather_taps), (conv, conv._split_columns),
                          (transpose, transpose._scatter_loops), (transpose, transpose._place_rows),
                          (transpose, transpose._gather_columns),
                          (transpose, transpose._add_rows),
                          (avg, avg._window_loops)):
        dispatcher = module.compiled(loops)
        counts[f"{module.__name__}.{loops.__qualname__}"] = (sum(dispatcher.stats.cache_hits.values()),
                                                             sum(dispatcher.stats.cache_misses.values()))
    print(json.dumps(counts))
""")


def test_after_warm_a_new_process_loads_the_oracles_loops_from_the_cache(tmp_path):
    # A cache of their own (the loops are small: seconds to compile), so what the probe finds there is what
    # warm() put there: the NumPy backend's warm(), which `conform backends --prepare` runs.
    cache = {"NUMBA_CACHE_DIR": str(tmp_path)}
    warmed = _run("from harness.backends.numpy_ref import NumpyBackend; NumpyBackend.warm()", **cache)
    assert warmed.returncode == 0, warmed.stderr
    probe = _run(ORACLE_PROBE, **cache)
    assert probe.returncode == 0, probe.stderr
    counts = json.loads(probe.stdout.strip().splitlines()[-1])
    assert len(counts) == 10
    assert counts["harness.ops.conv2d.oracle._split_columns"][0] >= 2, counts       # float32 and float64 x
    for name, (hits, misses) in counts.items():
        assert hits >= 1 and misses == 0, (name, counts)
