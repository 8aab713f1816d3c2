"""The ``numba`` pooling kernels (``harness/ops/{max,avg}_pool2d/numba_kernel.py``) against the float64 oracles.

Evidence, none of it borrowed from the kernels:

* the oracles (written from the definitions) on a grid that takes every path across a window's columns
  (stride 1: a run per tap; one masked vector per window; the stride-2 loops for 2- and 3-wide windows;
  the generic loop: dilation, strides above the kernel, windows wider than a vector; padded rows that
  fit one vector, reduced in a register) and down its rows (rows shorter and longer than a vector,
  with tails, dilated), every padding form, ``ceil_mode`` overhangs,
  windows of padding only, an empty batch, in every dtype and both layouts, with Numba's whole team;
  max pooling must equal the oracle exactly, average pooling stay within its error bound;
* NaN and ±inf in the input land where the definition puts them;
* the backend: a call the semantics rejects fails with the semantics' reason, and the program of a
  pooling call, rendered as a reproducer renders it, runs standalone and gives the kernel's numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import run_standalone_program, write

pytest.importorskip("numba")

from harness import ops  # noqa: E402
from harness.backends.numba_kernel import NumbaBackend  # noqa: E402
from harness.cases import load_file  # noqa: E402
from harness.data import UNIT_ROUNDOFF, round_to_dtype  # noqa: E402
from harness.kernels import threads  # noqa: E402
from harness.ops.avg_pool2d import numba_kernel as avg_kernel  # noqa: E402
from harness.ops.avg_pool2d import oracle as avg_oracle  # noqa: E402
from harness.ops.avg_pool2d import semantics as avg_semantics  # noqa: E402
from harness.ops.max_pool2d import numba_kernel as max_kernel  # noqa: E402
from harness.ops.max_pool2d import oracle as max_oracle  # noqa: E402
from harness.ops.max_pool2d import semantics as max_semantics  # noqa: E402
from harness.runner import prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ["float16", "bfloat16", "float32", "float64"]


@pytest.fixture(autouse=True)
def whole_team(monkeypatch):
    """Numba's own thread count for every call, whatever the machine's load (or a stalled call before)."""
    monkeypatch.setattr(threads, "_load", lambda: None)
    monkeypatch.setattr(threads, "_stalled", lambda wall, cpu: False)
    monkeypatch.setattr(threads, "_STALLS", {"left": 0})


WINDOWS = [   # NCHW inputs; the comment names the path across the columns in float32 (float64: 8 lanes)
    dict(input=[2, 3, 9, 37], kernel_size=2),                                             # stride-2 loop, k 2
    dict(input=[2, 3, 9, 37], kernel_size=3, stride=2, padding=1, ceil_mode=True),        # stride-2 loop, k 3
    dict(input=[1, 2, 14, 14], kernel_size=7),                                  # one vector (float64: windows)
    dict(input=[1, 2, 15, 23], kernel_size=[4, 6], stride=[3, 5], padding="same"),          # masked windows
    dict(input=[1, 2, 8, 21], kernel_size=[2, 3], stride=1, padding=[1, 0, 0, 1]),         # runs per tap
    dict(input=[1, 2, 5, 5], kernel_size=5, stride=1, padding=2),               # one vector (float64: runs)
    dict(input=[1, 3, 5, 30], kernel_size=2, stride=4),                                    # generic: s > k
    dict(input=[1, 1, 5, 40], kernel_size=[1, 17], stride=[1, 2], padding="same_lower"),   # generic: k > lanes
    dict(input=[2, 2, 7, 8], kernel_size=3, stride=3, padding="valid", ceil_mode=True),    # overhang
    dict(input=[2, 2, 7, 29], kernel_size=3, stride=3, padding=[0, 1, 2, 0], ceil_mode=True),   # overhang
    dict(input=[1, 2, 3, 3], kernel_size=2, stride=1, padding=[3, 0, 3, 0]),   # padding-only windows (one vector)
    dict(input=[1, 2, 3, 20], kernel_size=2, stride=1, padding=[3, 0, 3, 0]),  # padding-only windows (runs)
    dict(input=[0, 3, 5, 5], kernel_size=2, padding="same"),                               # no image
]
DILATED = [
    dict(input=[1, 2, 7, 9], kernel_size=[3, 2], stride=[1, 3], dilation=[2, 3], padding="same"),      # generic
    dict(input=[1, 2, 9, 9], kernel_size=2, stride=1, dilation=[3, 2], padding=[2, 1, 0, 3]),          # runs
    dict(input=[1, 2, 6, 25], kernel_size=[2, 3], stride=1, dilation=[1, 2], padding="same"),          # runs
    dict(input=[1, 2, 9, 20], kernel_size=[3, 2], stride=[1, 2], dilation=[2, 1], padding=[2, 0, 1, 0]),  # s 2
    dict(input=[1, 2, 9, 9], kernel_size=3, stride=1, dilation=[3, 1], padding=1),              # one vector
    dict(input=[1, 2, 2, 2], kernel_size=2, stride=1, dilation=3, padding=1),   # the window holds padding only
]


def _arrays(semantics, params, dtype, seed):
    p = semantics.Params(**params)
    rng = np.random.default_rng(seed)
    return semantics.resolve(p), {"x": round_to_dtype(rng.standard_normal(semantics.input_shapes(p)["x"]), dtype)}


def _in_layout(params, layout):
    params = dict(params, layout=layout)
    if layout == "NHWC":
        n, c, h, w = params["input"]
        params["input"] = [n, h, w, c]
    return params


def run_max(params, x, dtype):
    r = max_semantics.resolve(max_semantics.Params(**params))
    return max_kernel.max_pool2d(x, kernel=r.kernel, stride=r.stride, dilation=r.dilation, pads=r.pads,
                                 out_hw=r.out_hw, layout=r.layout, dtype=dtype)


def run_avg(params, x, dtype):
    r = avg_semantics.resolve(avg_semantics.Params(**params))
    return avg_kernel.avg_pool2d(x, kernel=r.kernel, stride=r.stride, pads=r.pads, out_hw=r.out_hw,
                                 count_include_pad=r.count_include_pad, layout=r.layout, dtype=dtype)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_equals_the_oracle(dtype, layout):
    """A maximum rounds nothing: every output, −∞ of the padding-only windows included, is the oracle's."""
    for case, params in enumerate(WINDOWS + DILATED):
        params = _in_layout(params, layout)
        r, arrays = _arrays(max_semantics, params, dtype, case)
        got = run_max(params, arrays["x"], dtype)
        want = max_oracle.reference(params, arrays)
        assert got.shape == want.shape == r.output_shape, params
        assert got.dtype == (np.float64 if dtype == "float64" else np.float32)
        np.testing.assert_array_equal(got, want, err_msg=str(params))
        assert np.array_equal(round_to_dtype(got, dtype), got)


def _check_avg(got, want, bound, dtype, kernel, label):
    """``|ŷ − y| ≤ u·|y| + u_acc·(K + 1)·B`` (Note [Average pooling]), float16's subnormal spacing added."""
    u = UNIT_ROUNDOFF[dtype]
    u_acc = UNIT_ROUNDOFF["float64" if dtype == "float64" else "float32"]
    tol = u * np.abs(want) + u_acc * (kernel[0] * kernel[1] + 1) * bound + (2.0 ** -25 if dtype == "float16" else 0.0)
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= tol), f"{label}: max excess {np.max(err - tol)}"


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool2d_is_within_the_bound_of_the_oracle(dtype, layout):
    for case, base in enumerate(WINDOWS + [dict(input=[1, 1, 4, 4], kernel_size=2, stride=1, padding=2)]):
        for include in (False, True):
            params = _in_layout(dict(base, count_include_pad=include), layout)
            try:
                r, arrays = _arrays(avg_semantics, params, dtype, case)
            except ops.InvalidCall:          # a window of padding only that is not counted: no average
                assert not include
                continue
            got = run_avg(params, arrays["x"], dtype)
            want = avg_oracle.reference(params, arrays)
            bound = avg_oracle.reference(params, {"x": np.abs(arrays["x"])})
            assert got.shape == want.shape == r.output_shape, params
            _check_avg(got, want, bound, dtype, r.kernel, str(params))
            assert np.array_equal(round_to_dtype(got, dtype), got)
            if include and case == len(WINDOWS):
                assert got.reshape(-1)[0] == 0           # the padding-only corner window, counted: 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_and_inf_land_where_the_definition_puts_them(dtype):
    rng = np.random.default_rng(5)
    x = round_to_dtype(rng.standard_normal((2, 3, 11, 19)), dtype)
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 5, 5:9] = np.inf
    x[1, 2, 6, 10] = -np.inf
    x[1, 2, 7, 11] = np.inf          # inf − inf in the average of a window holding both: NaN
    x[1, 0] = -np.inf                # a plane of −∞: its max is −∞
    for params in (dict(input=[2, 3, 11, 19], kernel_size=3, stride=2, padding=1),
                   dict(input=[2, 3, 11, 19], kernel_size=[2, 5], stride=1, padding="same"),
                   dict(input=[2, 3, 11, 19], kernel_size=4, stride=3, ceil_mode=True)):
        want = max_oracle.reference(params, {"x": x})
        got = run_max(params, x, dtype)
        assert np.isnan(want).any() and np.isneginf(want).any() and np.isposinf(want).any()
        np.testing.assert_array_equal(got, want)
        with np.errstate(invalid="ignore"):
            want = avg_oracle.reference(params, {"x": x})
            got = run_avg(params, x, dtype)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got) & (got > 0), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_a_call_the_semantics_rejects_fails_with_the_semantics_reason(op, tmp_path):
    spec = ops.get(op)
    error = spec.error_inputs[0]
    case = {"id": error.id, **error.fields, "expect": {"error": True}}
    (loaded,) = load_file(write(tmp_path / "case.yaml", yaml.safe_dump({"op": op, "cases": [case]})))
    call, _ = prepare(loaded)
    outcome = NumbaBackend().run(call)
    with pytest.raises(ops.InvalidCall) as semantics:
        spec.resolve(spec.Params.model_validate(error.fields))
    assert outcome.status == "error" and outcome.error_type.endswith("InvalidCall"), outcome
    assert outcome.error_message == str(semantics.value).splitlines()[0]


@pytest.mark.parametrize("op, index", [("max_pool2d", 2), ("avg_pool2d", 1)])
def test_the_pooling_program_runs_standalone_as_a_reproducer_embeds_it(tmp_path, op, index):
    """The numba program of a benchmark pooling call, rendered as reproducers render it (the kernel and its
    row reductions embedded, conform's imports dropped), runs in a bare interpreter and gives the kernel's
    result."""
    case = load_file(ROOT / "benchmarks" / f"{op}.yaml")[index]
    call, _ = prepare(case)
    program = getattr(NumbaBackend(), op)(call)
    got = run_standalone_program(tmp_path, program, call.arrays)
    params = call.params
    want = run_max(params, call.arrays["x"], call.dtype) if op == "max_pool2d" else \
        run_avg(params, call.arrays["x"], call.dtype)
    np.testing.assert_array_equal(got, want)
