"""The in-house Numba kernel ``harness.ops.conv2d_transpose.numba_kernel``.

Evidence, none of it borrowed from the kernel:

* a plain float64 loop over every (n, channel, input pixel, tap), written here
  from DESIGN.md §2, on small fixed cases;
* the float64 oracle ``harness.ops.conv2d_transpose.oracle.reference`` over random
  shapes, strides 1-3, dilations 1-2, groups 1-3, explicit crops,
  output_padding < max(stride, dilation), ``same``/``valid``, layouts and
  dtypes (hypothesis), with the error bounded by the oracle run on |x|, |w|, |b|;
* channel counts that exercise every register-tile width and ragged tails;
* inf/NaN in x or w land exactly where the definition puts them;
* float16/bfloat16 are the float32 result rounded once;
* a fresh process must load every compiled function from Numba's cache.

Crops and output sizes are derived here from DESIGN.md §2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.data import round_to_dtype
from harness.ops.conv2d_transpose import numba_kernel as nk
from harness.ops.conv2d_transpose.oracle import reference

ROOT = Path(__file__).resolve().parents[1]
UNIT = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24, "float64": 2.0 ** -53}


# --------------------------------------------------------------------------- helpers


def full_size(size, k, s, d):
    return (size - 1) * s + d * (k - 1) + 1


def axis(size, k, s, d, padding, op, out):
    """(crop_before, crop_after, out_size) of one axis, from DESIGN.md §2."""
    f = full_size(size, k, s, d)
    if padding == "valid":
        out = f if out is None else out
        return 0, max(0, f - out), out
    if padding == "same":
        out = size * s if out is None else out
        before = max(0, f - out) // 2
        return before, max(0, f - out - before), out
    before, after = padding
    return before, after, f - before - after + op


def naive(x, w, b, stride, dilation, groups, crops, out_hw):
    """Scatter-add, one input pixel and one tap at a time, in float64; NCHW."""
    n_, c_in, h, wd = x.shape
    _, cog, kh, kw = w.shape
    cig = c_in // groups
    (sh, sw), (dh, dw) = stride, dilation
    top, _, left, _ = crops
    h_out, w_out = out_hw
    rows = max(full_size(h, kh, sh, dh), top + h_out)
    cols = max(full_size(wd, kw, sw, dw), left + w_out)
    full = np.zeros((n_, groups * cog, rows, cols))
    for n in range(n_):
        for g in range(groups):
            for ci in range(cig):
                for o in range(cog):
                    for a in range(h):
                        for c in range(wd):
                            for i in range(kh):
                                for j in range(kw):
                                    full[n, g * cog + o, a * sh + i * dh, c * sw + j * dw] += (
                                        x[n, g * cig + ci, a, c] * w[g * cig + ci, o, i, j])
    out = full[:, :, top:top + h_out, left:left + w_out]
    if b is not None:
        out = out + b[None, :, None, None]
    return out


def run(x, w, b, *, stride=(1, 1), dilation=(1, 1), groups=1, crops=(0, 0, 0, 0), out_hw=None,
        layout="NCHW", dtype="float64"):
    if out_hw is None:
        out_hw = (full_size(x.shape[2], w.shape[2], stride[0], dilation[0]) - crops[0] - crops[1],
                  full_size(x.shape[3], w.shape[3], stride[1], dilation[1]) - crops[2] - crops[3])
    return nk.conv2d_transpose(x, w, b, stride=stride, dilation=dilation, groups=groups, crops=crops,
                               out_hw=out_hw, layout=layout, dtype=dtype)


def check_close(got, ref, bound, dtype):
    """|got - ref| <= rounding of the result + accumulation error, per element."""
    if dtype in ("float16", "bfloat16"):
        # float32 accumulation, then one rounding (float16 also has subnormals below 2**-14).
        tol = 2e-5 * bound + UNIT[dtype] * np.abs(ref) + (2.0 ** -25 if dtype == "float16" else 0.0)
    else:
        tol = (1e-12 if dtype == "float64" else 1e-5) * bound + 1e-300
    err = np.abs(got.astype(np.float64) - ref)
    worst = np.unravel_index(np.argmax(err - tol), err.shape) if err.size else None
    assert np.all(err <= tol), f"max excess at {worst}: got {got[worst]}, want {ref[worst]}, tol {tol[worst]}"


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Compile (or load from the cache) both compute dtypes once, outside the timed examples."""
    x = np.ones((1, 2, 3, 3))
    w = np.ones((2, 2, 2, 2))
    for dtype in ("float32", "float64"):
        run(x, w, None, dtype=dtype)


# --------------------------------------------------------------------------- against the plain loop


NAIVE_CASES = [
    # stride, dilation, groups, crops, out_hw (None: full minus crops), c_in, c_out, k
    ((1, 1), (1, 1), 1, (0, 0, 0, 0), None, 2, 3, (3, 3)),
    ((2, 2), (1, 1), 1, (1, 0, 0, 1), None, 3, 2, (3, 2)),
    ((2, 3), (1, 2), 2, (0, 1, 1, 0), None, 4, 4, (2, 3)),
    ((3, 1), (2, 1), 3, (2, 2, 0, 0), None, 3, 6, (2, 2)),
    ((2, 2), (1, 1), 1, (0, 0, 0, 0), (12, 13), 2, 2, (3, 3)),   # output_padding past the full output
    ((1, 2), (2, 1), 1, (1, 1, 2, 0), None, 1, 17, (3, 3)),      # 17 channels: ragged vector tail
    ((3, 3), (1, 1), 1, (0, 0, 0, 0), None, 2, 2, (1, 1)),       # taps never reach some phases
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(NAIVE_CASES)))
def test_matches_plain_loop(case, dtype, layout):
    stride, dilation, groups, crops, out_hw, c_in, c_out, k = NAIVE_CASES[case]
    rng = np.random.default_rng(case)
    x = round_to_dtype(rng.standard_normal((2, c_in, 5, 4)), dtype)
    w = round_to_dtype(rng.standard_normal((c_in, c_out // groups, *k)), dtype)
    b = round_to_dtype(rng.uniform(-1, 1, c_out), dtype)
    if out_hw is None:
        out_hw = (full_size(5, k[0], stride[0], dilation[0]) - crops[0] - crops[1],
                  full_size(4, k[1], stride[1], dilation[1]) - crops[2] - crops[3])
    want = naive(x, w, b, stride, dilation, groups, crops, out_hw)
    bound = naive(np.abs(x), np.abs(w), np.abs(b), stride, dilation, groups, crops, out_hw)
    got = run(x, w, b, stride=stride, dilation=dilation, groups=groups, crops=crops, out_hw=out_hw,
              layout=layout, dtype=dtype)
    if layout == "NHWC":
        got = got.transpose(0, 3, 1, 2)
    assert got.shape == want.shape
    check_close(got, want, bound, dtype)


def test_hand_computed_stride_2():
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    w = np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(1, 1, 2, 2)
    got = run(x, w, np.array([0.5]), stride=(2, 2))
    want = np.array([[1, 10, 2, 20], [100, 1000, 200, 2000], [3, 30, 4, 40], [300, 3000, 400, 4000]]) + 0.5
    np.testing.assert_array_equal(got[0, 0], want)


# --------------------------------------------------------------------------- against the oracle


@st.composite
def cases(draw):
    groups = draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    n = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    cog = draw(st.sampled_from([1, 2, 3, 5, 8, 9, 16, 17, 33]))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 9))
    form = draw(st.sampled_from(["explicit", "explicit", "same", "valid"]))
    params = {"stride": list(stride), "dilation": list(dilation), "groups": groups,
              "layout": draw(st.sampled_from(["NCHW", "NHWC"]))}
    sizes = []
    for size, kk, s, d in zip((h, w), k, stride, dilation):
        f = full_size(size, kk, s, d)
        if form == "explicit":
            before = draw(st.integers(0, f - 1))
            after = draw(st.integers(0, f - 1 - before))
            op = draw(st.integers(0, max(s, d) - 1))
            sizes.append(((before, after), op))
        else:
            sizes.append((form, 0))
    if form == "explicit":
        params["padding"] = [*sizes[0][0], *sizes[1][0]]
        params["output_padding"] = [sizes[0][1], sizes[1][1]]
    else:
        params["padding"] = form
        if draw(st.booleans()):
            # TensorFlow's reachable sizes: SAME ceil(out/s) == in, VALID ceil((out-K+1)/s) == in.
            shape = []
            for size, kk, s, d in zip((h, w), k, stride, dilation):
                lo = (size - 1) * s + 1 if form == "same" else full_size(size, kk, s, d)
                shape.append(draw(st.integers(lo, lo + s - 1)))
            params["output_shape"] = shape
    return params, (n, c_in, h, w), (c_in, cog, *k), draw(st.booleans()), draw(st.integers(0, 2 ** 32 - 1))


def crops_of(params, x_shape, w_shape):
    (sh, sw), (dh, dw) = params["stride"], params["dilation"]
    pad = params["padding"]
    op = params.get("output_padding", [0, 0])
    shape = params.get("output_shape") or (None, None)
    ph = pad if isinstance(pad, str) else pad[0:2]
    pw = pad if isinstance(pad, str) else pad[2:4]
    t, bt, ho = axis(x_shape[2], w_shape[2], sh, dh, ph, op[0], shape[0])
    l, r, wo = axis(x_shape[3], w_shape[3], sw, dw, pw, op[1], shape[1])
    return (t, bt, l, r), (ho, wo)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from(["float32", "float64"]))
def test_matches_oracle(case, dtype):
    params, x_shape, w_shape, bias, seed = case
    rng = np.random.default_rng(seed)
    x = round_to_dtype(rng.standard_normal(x_shape), dtype)
    w = round_to_dtype(rng.standard_normal(w_shape), dtype)
    cout = w_shape[1] * params["groups"]
    b = round_to_dtype(rng.uniform(-1, 1, cout), dtype) if bias else None
    crops, out_hw = crops_of(params, x_shape, w_shape)
    got = nk.conv2d_transpose(x, w, b, stride=tuple(params["stride"]), dilation=tuple(params["dilation"]),
                              groups=params["groups"], crops=crops, out_hw=out_hw,
                              layout=params["layout"], dtype=dtype)
    want = reference(params, {"x": x, "w": w, "b": b})
    bound = reference(params, {"x": np.abs(x), "w": np.abs(w), "b": None if b is None else np.abs(b)})
    assert got.shape == want.shape
    assert got.dtype == (np.float64 if dtype == "float64" else np.float32)
    assert got.flags.c_contiguous
    check_close(got, want, bound, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stride,cog", [((2, 2), 128), ((1, 1), 40), ((2, 1), 48), ((1, 2), 72), ((2, 2), 7)])
def test_wide_tiles_and_tails(dtype, stride, cog):
    """Every tile width (1-4 vectors of channels) plus ragged channel and pixel tails."""
    rng = np.random.default_rng(cog)
    x = round_to_dtype(rng.standard_normal((2, 6, 9, 30)), dtype)
    w = round_to_dtype(rng.standard_normal((6, cog, 3, 3)), dtype)
    b = round_to_dtype(rng.uniform(-1, 1, cog), dtype)
    params = {"stride": list(stride), "padding": [1, 0, 2, 1], "output_padding": [stride[0] - 1, 0]}
    crops, out_hw = crops_of({**params, "dilation": [1, 1]}, x.shape, w.shape)
    for layout in ("NCHW", "NHWC"):
        got = run(x, w, b, stride=stride, crops=crops, out_hw=out_hw, layout=layout, dtype=dtype)
        want = reference({**params, "layout": layout}, {"x": x, "w": w, "b": b})
        bound = reference({**params, "layout": layout}, {"x": np.abs(x), "w": np.abs(w), "b": np.abs(b)})
        check_close(got, want, bound, dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_is_float32_rounded_once(dtype):
    rng = np.random.default_rng(7)
    x = round_to_dtype(rng.standard_normal((2, 4, 6, 5)), dtype)
    w = round_to_dtype(rng.standard_normal((4, 3, 3, 3)), dtype)
    b = round_to_dtype(rng.uniform(-1, 1, 6), dtype)
    kw = dict(stride=(2, 1), dilation=(1, 2), groups=2, crops=(1, 0, 0, 2), out_hw=(12, 7))
    got = nk.conv2d_transpose(x, w, b, **kw, dtype=dtype)
    f32 = nk.conv2d_transpose(x, w, b, **kw, dtype="float32")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, round_to_dtype(f32, dtype))
    params = {"stride": [2, 1], "dilation": [1, 2], "groups": 2, "padding": [1, 0, 0, 2], "output_shape": [12, 7]}
    want = reference(params, {"x": x, "w": w, "b": b})
    bound = reference(params, {"x": np.abs(x), "w": np.abs(w), "b": np.abs(b)})
    check_close(got, want, bound, dtype)


# --------------------------------------------------------------------------- edges and contract


def test_crops_past_the_full_output_give_the_bias():
    x = np.ones((1, 2, 3, 3))
    w = np.ones((2, 3, 2, 2))
    b = np.array([1.5, -2.0, 0.25])
    got = run(x, w, b, crops=(10, 0, 0, 0), out_hw=(2, 5))
    np.testing.assert_array_equal(got, np.broadcast_to(b[None, :, None, None], (1, 3, 2, 5)))


def test_empty_output_and_empty_input():
    w = np.ones((2, 3, 2, 2))
    assert run(np.ones((0, 2, 3, 3)), w, None).shape == (0, 3, 4, 4)
    assert run(np.ones((1, 2, 3, 3)), w, None, out_hw=(0, 4), layout="NHWC").shape == (1, 0, 4, 3)
    got = run(np.ones((1, 2, 0, 3)), w, np.array([1.0, 2.0, 3.0]), out_hw=(2, 2))
    np.testing.assert_array_equal(got, np.broadcast_to(np.array([1.0, 2.0, 3.0])[None, :, None, None], (1, 3, 2, 2)))


@pytest.mark.parametrize("kwargs,message", [
    ({"groups": 3}, "divisible"),
    ({"dtype": "int8"}, "dtype"),
    ({"layout": "CHWN"}, "layout"),
    ({"stride": (0, 1)}, "stride"),
    ({"crops": (-1, 0, 0, 0)}, ">= 0"),
])
def test_rejects_invalid_calls(kwargs, message):
    call = dict(stride=(1, 1), dilation=(1, 1), groups=1, crops=(0, 0, 0, 0), out_hw=(4, 4))
    call.update(kwargs)
    with pytest.raises(ValueError, match=message):
        nk.conv2d_transpose(np.ones((1, 2, 3, 3)), np.ones((2, 1, 2, 2)), None, **call)


def test_every_jit_function_is_cached_and_a_fresh_process_loads_it():
    dispatchers = [v for v in vars(nk).values() if hasattr(v, "py_func") and hasattr(v, "stats")]
    assert {d.__name__ for d in dispatchers} >= {"_kernel", "_rows", "tile_sweep", "pack_transposed_weights", "_fill_bias", "_scatter_exact"}
    for d in dispatchers:
        assert type(d._cache).__name__ == "FunctionCache", f"{d.__name__} is not cache=True"
    script = textwrap.dedent("""
        import json, time
        import numpy as np
        from harness.ops.conv2d_transpose import numba_kernel as nk
        t0 = time.perf_counter()
        for dtype in ("float32", "float64"):
            nk.conv2d_transpose(np.ones((1, 2, 3, 3)), np.ones((2, 2, 2, 2)), None, stride=(1, 1),
                                dilation=(1, 1), groups=1, crops=(0, 0, 0, 0), out_hw=(4, 4), dtype=dtype)
        elapsed = time.perf_counter() - t0
        misses = {d.__name__: sum(d.stats.cache_misses.values())
                  for d in vars(nk).values() if hasattr(d, "py_func") and hasattr(d, "stats")}
        print(json.dumps({"elapsed": elapsed, "misses": misses}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not any(report["misses"].values()), report


def test_cache_key_covers_the_shared_tile_code(tmp_path, monkeypatch):
    """Editing harness/kernels/tiles.py (or packing.py) must invalidate the kernels' cached code."""
    from harness.kernels import jitcache
    from harness.ops.conv2d import numba_kernel
    for dispatcher in (nk._kernel, numba_kernel._kernel):
        locator = dispatcher._cache._impl.locator
        assert type(locator).__name__ == "_SharedSourceLocator"
        before = locator.get_source_stamp()
        edited = tmp_path / "tiles.py"
        edited.write_bytes(jitcache.SHARED_SOURCES[0].read_bytes() + b"\n# edited\n")
        monkeypatch.setattr(jitcache, "SHARED_SOURCES", (edited,))
        assert locator.get_source_stamp() != before
        monkeypatch.undo()
        assert locator.get_source_stamp() == before


def test_compiled_kernel_code_calls_only_its_own_file_and_the_shared_sources():
    """Numba keys a cached function on its own file (and jitcache's shared sources): a compiled function
    that calls a compiled function of another file keeps the old callee after that file is edited. So
    the kernels' compiled code calls, besides its own file's, only harness/kernels/ files in the key
    (calls between the operators' modules go through Python)."""
    import ast
    import importlib

    from numba.core.dispatcher import Dispatcher

    from harness.kernels import jitcache
    shared = {path.resolve() for path in jitcache.SHARED_SOURCES}
    checked = 0
    for path in sorted((ROOT / "harness" / "ops").glob("*/numba_*.py")):
        tree = ast.parse(path.read_text())
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        imported = {alias.asname or alias.name: node.module for node in tree.body
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness.")
                    for alias in node.names}
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            if not isinstance(getattr(module, fn.name, None), Dispatcher):
                continue
            checked += 1
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)):
                source = imported.get(call.func.id)
                if source is None or not isinstance(getattr(module, call.func.id), Dispatcher):
                    continue
                where = Path(importlib.import_module(source).__file__).resolve()
                assert where in shared, f"{path.name}: {fn.name} calls {source}.{call.func.id} from compiled code"
    assert checked > 20


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_values_propagate_as_in_the_definition(dtype, layout):
    """inf/NaN reach exactly the outputs the definition says: no 0·inf from padding."""
    rng = np.random.default_rng(3)
    x = round_to_dtype(rng.standard_normal((1, 4, 5, 6)), dtype)
    w = round_to_dtype(rng.standard_normal((4, 3, 3, 3)), dtype)
    b = round_to_dtype(rng.uniform(-1, 1, 6), dtype)
    params = {"stride": [2, 1], "dilation": [1, 2], "groups": 2, "padding": [1, 0, 0, 2], "layout": layout}
    crops, out_hw = crops_of({**params, "output_padding": [0, 0]}, x.shape, w.shape)
    cases_ = []
    x_inf = x.copy()
    x_inf[0, 1, 0, 0] = np.inf
    x_inf[0, 3, 2, 5] = np.nan
    cases_.append((x_inf, w))
    w_inf = w.copy()
    w_inf[0, 1, 2, 2] = -np.inf
    w_inf[3, 0, 0, 1] = np.nan
    cases_.append((x, w_inf))
    for xx, ww in cases_:
        got = nk.conv2d_transpose(xx, ww, b, stride=(2, 1), dilation=(1, 2), groups=2, crops=crops,
                                  out_hw=out_hw, layout=layout, dtype=dtype)
        want = reference(params, {"x": xx, "w": ww, "b": b})
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got) * np.sign(got), np.isinf(want) * np.sign(want))
        fin = np.isfinite(want)
        bound = reference(params, {"x": np.where(np.isfinite(xx), np.abs(xx), 0),
                                   "w": np.where(np.isfinite(ww), np.abs(ww), 0), "b": np.abs(b)})
        check_close(got[fin], want[fin], bound[fin], dtype)
