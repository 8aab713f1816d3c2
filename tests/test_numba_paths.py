"""Each path of the ``numba`` kernels against the float64 oracle, on the same calls, with the full team.

The kernels pick a path per call (channel tiles or pixel vectors; for conv2d also
im2col blocks for narrow outputs, whose blocks and channel ranges are split
between threads by how many there are), so a parameter form one path handles well may
never reach the other. Here each call is forced through every path it can take
(the path choice is monkeypatched), with Numba's whole thread team (the team
otherwise shrinks on a loaded machine and the multi-thread code paths go
untested): strides, dilation, groups, asymmetric padding / crops, output
padding past the full output, NHWC, bias, every dtype, and channel counts
that fill 8-, 4-, 2- and 1-channel pixel tiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_standalone_program

pytest.importorskip("numba")

from harness.backends.numba_kernel import NumbaBackend  # noqa: E402
from harness.cases import load_file  # noqa: E402
from harness.data import round_to_dtype  # noqa: E402
from harness.kernels import threads  # noqa: E402
from harness.ops.conv2d import numba_kernel as conv_kernel  # noqa: E402
from harness.ops.conv2d import numba_plan as conv_plan  # noqa: E402
from harness.ops.conv2d import oracle as conv_oracle  # noqa: E402
from harness.ops.conv2d import semantics as conv_semantics  # noqa: E402
from harness.ops.conv2d_transpose import numba_kernel as tconv_kernel  # noqa: E402
from harness.ops.conv2d_transpose import oracle as tconv_oracle  # noqa: E402
from harness.ops.conv2d_transpose import semantics as tconv_semantics  # noqa: E402
from harness.runner import prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

UNIT = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}


@pytest.fixture(autouse=True)
def whole_team(monkeypatch):
    """Numba's own thread count for every call, whatever the machine's load (or a stalled call before)."""
    monkeypatch.setattr(threads, "_load", lambda: None)
    monkeypatch.setattr(threads, "_stalled", lambda wall, cpu: False)
    monkeypatch.setattr(threads, "_STALLS", {"left": 0})


def check_close(got, want, bound, dtype):
    if dtype in UNIT:
        tol = 2e-5 * bound + UNIT[dtype] * np.abs(want) + (2.0 ** -25 if dtype == "float16" else 0.0)
    else:
        tol = (1e-12 if dtype == "float64" else 1e-5) * bound + 1e-300
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= tol), f"max excess {np.max(err - tol)} at {np.unravel_index(np.argmax(err - tol), err.shape)}"


def against_oracle(op, params, dtype, seed):
    semantics, oracle = (conv_semantics, conv_oracle) if op == "conv2d" else (tconv_semantics, tconv_oracle)
    p = semantics.Params(**params)
    r = semantics.resolve(p)
    rng = np.random.default_rng(seed)
    arrays = {name: round_to_dtype(rng.standard_normal(shape), dtype)
              for name, shape in semantics.input_shapes(p).items()}
    kw = dict(stride=r.stride, dilation=r.dilation, groups=r.groups, out_hw=r.out_hw, layout=r.layout, dtype=dtype)
    if op == "conv2d":
        got = conv_kernel.conv2d(arrays["x"], arrays["w"], arrays.get("b"), pads=r.pads, **kw)
    else:
        got = tconv_kernel.conv2d_transpose(arrays["x"], arrays["w"], arrays.get("b"), crops=r.crops, **kw)
    want = oracle.reference(params, arrays)
    bound = oracle.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    assert got.shape == want.shape
    check_close(got, want, bound, dtype)


TRANSPOSED = [   # cog = out_channels / groups: 13 = 8 + 4 + 1 pixel tiles; 20 spans channel vectors
    dict(input=[2, 16, 9, 11], out_channels=64, kernel_size=3, stride=2, groups=8, padding="same"),
    dict(input=[1, 4, 7, 40], out_channels=26, kernel_size=[3, 4], stride=[2, 3], dilation=[2, 1], groups=2,
         padding=[1, 3, 0, 2], output_padding=[1, 2]),
    dict(input=[2, 6, 6, 35], out_channels=20, kernel_size=5, dilation=2, padding="same"),
    dict(input=[3, 3, 5, 4], out_channels=3, kernel_size=[2, 3], stride=[1, 2], groups=3, padding="valid",
         output_shape=[6, 10]),
    dict(input=[1, 8, 4, 3], out_channels=16, kernel_size=3, stride=3, groups=4, padding=[4, 0, 0, 5]),
    # stride 1: pixel vectors as the correlation with the flipped kernel (conv2d's pixel tiles)
    dict(input=[2, 16, 5, 7], out_channels=16, kernel_size=3, dilation=[2, 1], groups=2, padding=[3, 0, 2, 1],
         output_padding=[1, 0]),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float64"])
@pytest.mark.parametrize("pixels", [True, False], ids=["pixel-vectors", "channel-tiles"])
@pytest.mark.parametrize("case", range(len(TRANSPOSED)))
def test_transposed_paths_match_the_oracle(monkeypatch, case, pixels, dtype, layout):
    monkeypatch.setattr(tconv_kernel, "pixel_path", lambda *args: pixels)
    params = dict(TRANSPOSED[case], bias=case % 2 == 0, layout=layout)
    if layout == "NHWC":
        n, c, h, w = params["input"]
        params["input"] = [n, h, w, c]
    against_oracle("conv2d_transpose", params, dtype, case)


CONV = [   # pixel vectors with 8/4/2/1-channel tiles; im2col blocks (the last four) with one image
    dict(input=[2, 16, 9, 16], out_channels=16, kernel_size=3, stride=2, groups=2, padding="same"),
    dict(input=[1, 6, 8, 37], out_channels=39, kernel_size=[2, 3], stride=[1, 2], dilation=[2, 1], groups=3,
         padding=[1, 0, 2, 3]),
    dict(input=[1, 64, 9, 9], out_channels=48, kernel_size=3, stride=2, padding=[1, 0, 0, 1]),
    dict(input=[1, 64, 7, 6], out_channels=64, kernel_size=3, dilation=[1, 2], padding="same"),
    # one pixel vector, one image: the channels are split into chunks of multiples of 4 (22: 4 + 4 + 8 + 6 on two threads)
    dict(input=[1, 64, 4, 4], out_channels=22, kernel_size=3, padding="same"),
    # K = 9360: blocks of at most 2 pixel vectors (a 4-vector block would pass 2 MB)
    dict(input=[1, 1040, 6, 6], out_channels=8, kernel_size=3, padding="same"),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("pixels", [True, False], ids=["pixel-vectors", "channel-tiles"])
@pytest.mark.parametrize("case", range(len(CONV)))
def test_conv2d_paths_match_the_oracle(monkeypatch, case, pixels, dtype, layout):
    monkeypatch.setattr(conv_plan, "_pixel_path", lambda *args: pixels)
    monkeypatch.setattr(conv_plan, "_PLANS", {})       # no plan made with the real choice
    params = dict(CONV[case], bias=case % 2 == 1, layout=layout)
    if layout == "NHWC":
        n, c, h, w = params["input"]
        params["input"] = [n, h, w, c]
    against_oracle("conv2d", params, dtype, case)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("path, params", [
    (conv_plan.PIXELS, dict(input=[0, 4, 6, 6], out_channels=4, kernel_size=3, groups=4)),
    (conv_plan.GEMM, dict(input=[0, 64, 4, 4], out_channels=22, kernel_size=3, padding="same")),
    (conv_plan.ROWS, dict(input=[0, 4, 6, 40], out_channels=32, kernel_size=3)),
])
def test_conv2d_of_an_empty_batch_is_empty_on_every_path(monkeypatch, path, params, layout):
    """A batch of no images (the semantics allow it) gives the empty output of the oracle's shape, whichever
    path its plan takes (the plan is made before the empty output is returned)."""
    monkeypatch.setattr(conv_plan, "_PLANS", {})
    n, c, h, w = params["input"]
    p = conv_semantics.Params(**dict(params, layout=layout, input=[n, h, w, c] if layout == "NHWC" else [n, c, h, w]))
    r = conv_semantics.resolve(p)
    shapes = conv_semantics.input_shapes(p)
    x, w = np.zeros(shapes["x"]), np.ones(shapes["w"])
    got = conv_kernel.conv2d(x, w, None, stride=r.stride, dilation=r.dilation, groups=r.groups, pads=r.pads,
                             out_hw=r.out_hw, layout=layout, dtype="float32")
    assert [plan.path for plan in conv_plan._PLANS.values()] == [path]
    assert got.shape == conv_oracle.reference(p.model_dump(), {"x": x, "w": w}).shape == r.output_shape


def test_im2col_call_with_a_non_finite_weight_follows_the_definition():
    """im2col blocks read the weights in place: an inf among them still sends the call to the exact fallback."""
    params = dict(input=[1, 64, 7, 7], out_channels=48, kernel_size=3, stride=2, padding=[1, 0, 0, 1])
    r = conv_semantics.resolve(conv_semantics.Params(**params))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 64, 7, 7))
    w = rng.standard_normal((48, 64, 3, 3))
    w[40, 5, 0, 0] = np.inf
    got = conv_kernel.conv2d(x, w, None, stride=r.stride, dilation=r.dilation, groups=1, pads=r.pads,
                             out_hw=r.out_hw, dtype="float64")
    with np.errstate(invalid="ignore"):
        want = conv_oracle.reference(params, {"x": x, "w": w})
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert finite.any() and not finite.all()
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("op, index", [("conv2d_transpose", 3), ("conv2d", 1)], ids=["grouped-transposed", "im2col"])
def test_the_backends_program_runs_standalone_as_a_reproducer_embeds_it(tmp_path, op, index):
    """The numba program of a grouped transposed convolution (pixel tiles) and of conv2d b2 (im2col blocks),
    rendered as reproducers render it (the kernel sources embedded, conform's imports dropped), runs in a bare
    interpreter and gives the kernel's result: every name the kernels use must be defined in the embedded
    sources themselves (an ``import ... as`` alias is not)."""
    case = load_file(ROOT / "benchmarks" / f"{op}.yaml")[index]
    call, _ = prepare(case)
    program = getattr(NumbaBackend(), op)(call)
    got = run_standalone_program(tmp_path, program, call.arrays)
    r = call.resolved
    where = dict(crops=tuple(r["crops"])) if op == "conv2d_transpose" else dict(pads=tuple(r["pads"]))
    kernel = tconv_kernel.conv2d_transpose if op == "conv2d_transpose" else conv_kernel.conv2d
    want = kernel(call.arrays["x"], call.arrays["w"], None, stride=tuple(r["stride"]), dilation=tuple(r["dilation"]),
                  groups=r["groups"], out_hw=tuple(r["out_hw"]), dtype=call.dtype, **where)
    np.testing.assert_array_equal(got, want)
