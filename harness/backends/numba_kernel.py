"""Backend ``numba``: the in-house JIT kernels (``harness/ops/<op>/numba_kernel.py``).

A kernel consumes the resolved call (crops and output size), since it *is*
an implementation of the canonical semantics rather than a foreign API; a
call the semantics rejects is rejected here with the semantics' reason.

Compiling the kernels takes ~30 s per fresh checkout; ``warm`` (run by
``conform backends --prepare``, i.e. ``make setup``) pays it once, leaving
machine code in Numba's on-disk cache for every worker after it.
"""

from __future__ import annotations

from harness.backends.base import Backend, Call
from harness.backends.numpy_ref import semantics_rejection
from harness.backends.program import Attr, Import, Program, Ref, Step
from harness.backends.program import Call as Expr

KERNEL = "harness.ops.conv2d_transpose.numba_kernel"
CONV2D_KERNEL = "harness.ops.conv2d.numba_kernel"
MAX_POOL_KERNEL = "harness.ops.max_pool2d.numba_kernel"
AVG_POOL_KERNEL = "harness.ops.avg_pool2d.numba_kernel"
CONVERT = "harness.kernels.convert"
KERNELS = (KERNEL, CONV2D_KERNEL, MAX_POOL_KERNEL, AVG_POOL_KERNEL, CONVERT)


class NumbaBackend(Backend):
    id = "numba"
    framework = "numba"
    distribution = "numba"
    import_name = "numba"
    in_house = True
    gradient_gap = "no gradient: conform has no numba gradient kernels"
    plans_calls = True
    resident_bytes = 192 << 20      # measured 159 MiB after setup and compilation
    accumulation = {"float16": "float32", "bfloat16": "float32"}

    @classmethod
    def warm(cls, say=lambda text: None) -> None:
        say("numba: compiling the kernels into Numba's on-disk cache (once; about a minute when nothing is cached)")
        warm()

    def setup(self) -> None:
        import importlib
        for kernel in KERNELS:   # compiled (or loaded) once per worker, before any call is timed
            importlib.import_module(kernel)

    def conv2d_transpose(self, call: Call) -> Program:
        r = call.resolved
        if r is None:
            return semantics_rejection(call, "numba")
        kwargs = dict(stride=tuple(r["stride"]), dilation=tuple(r["dilation"]), groups=r["groups"],
                      crops=tuple(r["crops"]), out_hw=tuple(r["out_hw"]), layout=call.layout, dtype=call.dtype)
        bias = Ref("b") if "b" in call.arrays else None
        step = Step("y", Expr(f"{KERNEL}.conv2d_transpose", (Ref("x"), Ref("w"), bias), kwargs), timed=True)
        return Program("numba", (Import("numpy"), Import(KERNEL, embed=True), Import(CONVERT, embed=True)),
                       tuple(call.arrays), (_converted(call, "x"), _converted(call, "w"), step), "y")

    def conv2d(self, call: Call) -> Program:
        r = call.resolved
        if r is None:
            return semantics_rejection(call, "numba")
        kwargs = dict(stride=tuple(r["stride"]), dilation=tuple(r["dilation"]), groups=r["groups"],
                      pads=tuple(r["pads"]), out_hw=tuple(r["out_hw"]), layout=call.layout, dtype=call.dtype)
        bias = Ref("b") if "b" in call.arrays else None
        step = Step("y", Expr(f"{CONV2D_KERNEL}.conv2d", (Ref("x"), Ref("w"), bias), kwargs), timed=True)
        return Program("numba", (Import("numpy"), Import(CONV2D_KERNEL, embed=True), Import(CONVERT, embed=True)),
                       tuple(call.arrays), (_converted(call, "x"), _converted(call, "w"), step), "y")

    def max_pool2d(self, call: Call) -> Program:
        r = call.resolved
        if r is None:
            return semantics_rejection(call, "numba")
        kwargs = dict(kernel=tuple(r["kernel"]), stride=tuple(r["stride"]), dilation=tuple(r["dilation"]),
                      pads=tuple(r["pads"]), out_hw=tuple(r["out_hw"]), layout=call.layout, dtype=call.dtype)
        step = Step("y", Expr(f"{MAX_POOL_KERNEL}.max_pool2d", (Ref("x"),), kwargs), timed=True)
        return Program("numba", (Import("numpy"), Import(MAX_POOL_KERNEL, embed=True), Import(CONVERT, embed=True)),
                       tuple(call.arrays), (_converted(call, "x"), step), "y")

    def avg_pool2d(self, call: Call) -> Program:
        r = call.resolved
        if r is None:
            return semantics_rejection(call, "numba")
        kwargs = dict(kernel=tuple(r["kernel"]), stride=tuple(r["stride"]), pads=tuple(r["pads"]),
                      out_hw=tuple(r["out_hw"]), count_include_pad=bool(r["count_include_pad"]), layout=call.layout,
                      dtype=call.dtype)
        step = Step("y", Expr(f"{AVG_POOL_KERNEL}.avg_pool2d", (Ref("x"),), kwargs), timed=True)
        return Program("numba", (Import("numpy"), Import(AVG_POOL_KERNEL, embed=True), Import(CONVERT, embed=True)),
                       tuple(call.arrays), (_converted(call, "x"), step), "y")


def _converted(call: Call, name: str) -> Step:
    """An operand in the kernel's compute dtype before the timed call (the timed call is the kernel alone, as
    every framework adapter converts its operands first), converted on Numba's threads
    (``harness.kernels.convert``: as torch's adapter converts with torch, leaving its threads awake and the
    data in both cores' caches)."""
    dtype = Attr("numpy.float64" if call.dtype == "float64" else "numpy.float32")
    return Step(name, Expr(f"{CONVERT}.compute_operand", (Ref(name),), {"dtype": dtype}), "prepare",
                comment="the compute dtype")


# Tiny calls that between them reach every compiled function the backend can call, per compute dtype:
# (op, x shape, w shape, groups, stride). conv2d: rows (W_out > 16), im2col blocks (W_out <= 16, a
# weight panel over half of L1), pixel vectors (depthwise; compiles their channel-row tiles too), Winograd
# (3x3, 32 channels, 529 tiles: float32 compute; float64 takes the rows path); the transposed kernel: channel tiles
# and pixel vectors (2 channels per group).
_WARM_CALLS = (
    ("conv2d", (1, 4, 3, 20), (32, 4, 3, 3), 1, 1),
    ("conv2d", (1, 64, 4, 4), (32, 64, 3, 3), 1, 1),
    ("conv2d", (1, 4, 6, 6), (4, 1, 3, 3), 4, 1),
    ("conv2d", (1, 32, 48, 48), (32, 32, 3, 3), 1, 1),
    ("conv2d_transpose", (1, 4, 3, 3), (4, 8, 3, 3), 1, 2),
    ("conv2d_transpose", (1, 4, 3, 3), (4, 2, 3, 3), 2, 2),
)


def warm() -> None:
    """Compile (or load) every kernel signature the backend can call into Numba's on-disk cache.

    Every call path of the convolution kernels, in each dtype and layout the backend passes
    (float16/bfloat16 compute in float32), and the exact fallbacks (weights holding inf); the pooling
    kernels in each dtype and layout, on one thread (a serial loop) and on several (a parallel one):
    their paths are branches inside those loops; their operands' conversion (``harness.kernels.convert``).
    Signatures depend on dtypes only, never on sizes, so tiny calls suffice; ``tests/test_numba_warm.py``
    checks that a new process's calls then compile nothing.
    """
    import importlib

    import numba
    import numpy as np
    kernels = {"conv2d": importlib.import_module(CONV2D_KERNEL).conv2d,
               "conv2d_transpose": importlib.import_module(KERNEL).conv2d_transpose}
    for op, xs, ws, groups, s in _WARM_CALLS:
        x, w = np.ones(xs), np.ones(ws)
        if op == "conv2d":
            where = dict(pads=(0, 0, 0, 0), out_hw=((xs[2] - ws[2]) // s + 1, (xs[3] - ws[3]) // s + 1))
            cout = ws[0]
        else:
            where = dict(crops=(0, 0, 0, 0), out_hw=((xs[2] - 1) * s + ws[2], (xs[3] - 1) * s + ws[3]))
            cout = ws[1] * groups
        bad = w.copy()
        bad.flat[0] = np.inf                              # sends the call to the exact fallback
        for dtype in ("float16", "bfloat16", "float32", "float64"):
            for layout in ("NCHW", "NHWC"):
                for weights in (w, bad):
                    kernels[op](x, weights, np.ones(cout), stride=(s, s), dilation=(1, 1), groups=groups, layout=layout,
                                dtype=dtype, **where)
    # The pooling kernels unwrapped from fit_threads, so that each team size is the one asked for, whatever
    # the load: one thread runs a serial loop, several a parallel one, and both must be compiled.
    convert = importlib.import_module(CONVERT).compute_operand.__wrapped__
    max_pool2d = importlib.import_module(MAX_POOL_KERNEL).max_pool2d.__wrapped__
    avg_pool2d = importlib.import_module(AVG_POOL_KERNEL).avg_pool2d.__wrapped__
    x = np.ones((1, 2, 5, 5))
    threads = numba.get_num_threads()
    try:
        for team in sorted({1, threads}):
            numba.set_num_threads(team)
            convert(x, np.float32)
            for dtype in ("float16", "bfloat16", "float32", "float64"):
                for layout in ("NCHW", "NHWC"):
                    max_pool2d(x, kernel=(2, 2), stride=(2, 2), dilation=(1, 1), pads=(0, 1, 0, 1), out_hw=(3, 3),
                               layout=layout, dtype=dtype)
                    avg_pool2d(x, kernel=(2, 2), stride=(2, 2), pads=(0, 1, 0, 1), out_hw=(3, 3),
                               count_include_pad=True, layout=layout, dtype=dtype)
    finally:
        numba.set_num_threads(threads)
