"""The ``jax.lax`` backend through the real JAX, in its own environment (harness/envs.py).

* program building (no JAX needed): JAX's own ``'SAME'``/``'VALID'`` are passed
  only where they mean the canonical form, groups go to
  ``conv_general_dilated``, what is emulated is marked, half-precision
  convolutions declare float32 accumulation;
* real calls (the runner, one worker in the ``jax`` environment): every case
  passes against the oracle, float64 runs in float64, the native parameters are
  in the calls, J1 (an empty output for a window larger than the input) is
  xfail with the project registry;
* the ``PARAMETERS`` declarations against the real signatures and against the
  calls the adapter made on suite cases using each canonical parameter.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from test_mapping import _calls, _passes

from harness import divergences, envs, mapping, ops
from harness.backends.base import Call
from harness.backends.jax_lax import JaxLaxBackend, jax_transpose_string_pads, transpose_pairs
from harness.backends.program import main_call, native_call
from harness.cases import load_suite
from harness.runner import RunOptions, run
from tests.helpers import ROOT, write

needs_env = pytest.mark.skipif(envs.uv_binary() is None, reason="uv is not installed (make setup installs it)")
OPS = ["conv2d_transpose", "conv2d", "avg_pool2d", "max_pool2d"]
#: The operator's own API; conv2d_transpose's grouped calls go to conv_general_dilated.
APIS = {"conv2d_transpose": ("jax.lax.conv_transpose", "jax.lax.conv_general_dilated"),
        "conv2d": ("jax.lax.conv_general_dilated",), "avg_pool2d": ("jax.lax.reduce_window",),
        "max_pool2d": ("jax.lax.reduce_window",)}

CASES = """
op: {op}
cases:
{body}
"""
TRANSPOSE = """
  - id: jt-valid-kernel-below-stride      # JAX's 'VALID' would give H·s rows, not (H−1)·s + K
    input: [1, 2, 4, 5]
    out_channels: 3
    kernel_size: 2
    stride: 3
    padding: valid
  - id: jt-same-dilated-odd               # K − s = 3: the odd row at the bottom, JAX's 'SAME' agrees
    input: [2, 3, 5, 4]
    out_channels: 2
    kernel_size: 3
    dilation: 2
    stride: 2
    padding: same
    layout: NHWC
    bias: true
    dtype: float16
  - id: jt-grouped-crops-beyond-kernel    # crop 3 > K − 1 = 2: a negative pair; groups: conv_general_dilated
    input: [1, 4, 5, 5]
    out_channels: 6
    groups: 2
    kernel_size: 3
    stride: 2
    padding: [3, 1, 0, 2]
    output_padding: 1
    dtype: float64
  - id: jt-crops-remove-output            # J1: an empty output instead of an error
    input: [1, 4, 2, 4]
    out_channels: 4
    kernel_size: 3
    padding: [2, 2, 0, 0]
    expect: {error: true}
"""
POOL = """
  - id: jp-{op}-ceil-nhwc
    input: [1, 5, 7, 2]
    layout: NHWC
    kernel_size: 3
    stride: 2
    padding: [1, 0, 0, 1]
    ceil_mode: true
    dtype: bfloat16
  - id: jp-{op}-same
    input: [2, 3, 6, 5]
    kernel_size: [3, 2]
    stride: [2, 3]
    padding: same
    dtype: float64
"""


def _call(op, dtype="float32", **fields):
    """A valid call as the runner poses it (canonical params, resolved), operands of the right shapes."""
    spec = ops.get(op)
    params = spec.Params(**fields)
    arrays = {name: np.zeros(shape) for name, shape in spec.shapes(params).items()}
    return Call(op=op, case_id="t", params=params.model_dump(), resolved=spec.resolve(params).as_dict(),
                dtype=dtype, arrays=arrays)


# --------------------------------------------------------------------------- programs (no JAX)


@pytest.mark.parametrize("k", range(1, 6))
@pytest.mark.parametrize("s", range(1, 5))
@pytest.mark.parametrize("d", (1, 2))
def test_jax_string_paddings_are_used_exactly_where_they_mean_the_canonical_form(k, s, d):
    params = {"kernel_size": [k, k], "stride": [s, s], "dilation": [d, d], "output_padding": [0, 0],
              "output_shape": None}
    eff = d * (k - 1) + 1
    for mode in ("same", "valid"):
        pairs = transpose_pairs(dict(params, padding=mode), (1, 1, 4, 5))
        native = [jax_transpose_string_pads(eff, s, mode.upper())] * 2
        # 'SAME' always matches (H·s rows, (K − s)//2 cropped on top); 'VALID' only while K ≥ s.
        assert (pairs == native) == (mode == "same" or eff >= s), (mode, pairs, native)


def test_a_grouped_transposed_call_is_conv_general_dilated_with_lhs_dilation():
    call = _call("conv2d_transpose", input=[1, 4, 3, 3], out_channels=6, kernel_size=2, stride=[2, 1],
                 padding="same", groups=2)
    program = JaxLaxBackend().conv2d_transpose(call)
    call = main_call(program).expr
    assert call.fn == "jax.lax.conv_general_dilated"
    assert call.kwargs["lhs_dilation"] == (2, 1) and call.kwargs["feature_group_count"] == 2
    assert not isinstance(call.kwargs["padding"], str) and not program.emulated
    assert program.accumulation is None   # float32: nothing to declare


def test_average_is_emulated_and_max_is_native_reduce_window():
    backend = JaxLaxBackend()
    avg = backend.avg_pool2d(_call("avg_pool2d", "float16", input=[1, 2, 4, 5], kernel_size=2, padding="valid"))
    top = backend.max_pool2d(_call("max_pool2d", "float16", input=[1, 2, 4, 5], kernel_size=2, padding="valid"))
    assert avg.emulated and not top.emulated
    assert "jax.numpy.divide" in native_call(avg) and "jax.lax.max" in native_call(top)
    assert avg.accumulation is None   # reduce_window sums in the case dtype: the conservative default
    conv = backend.conv2d(_call("conv2d", "bfloat16", input=[1, 2, 4, 5], out_channels=3, kernel_size=3,
                                padding="same"))
    assert conv.accumulation == "float32" and "padding='SAME'" in native_call(conv)


# --------------------------------------------------------------------------- real calls


@pytest.fixture(scope="module")
def jax_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jax")
    files = [write(folder / "t.yaml", CASES.format(op="conv2d_transpose", body=TRANSPOSE))]
    files += [write(folder / f"{op}.yaml", CASES.format(op=op, body=POOL.format(op=op)))
              for op in ("avg_pool2d", "max_pool2d")]
    picked = {}
    for op in OPS:   # up to 3 cases per canonical parameter, spread over the default suite
        suite = [c for c in load_suite([str(ROOT / "cases" / op)]) if c.resolved is not None]
        for canon in mapping.canonical(op):
            using = [c for c in suite if canon.uses(c.canonical_params(), c.dtype)]
            for c in (using[:1] + using[len(using) // 2: len(using) // 2 + 1] + using[-1:]) if using else []:
                picked[c.id] = c
    cases = load_suite([str(f) for f in files]) + list(picked.values())
    registry = divergences.load(ROOT / "cases" / "known_divergences.yaml")
    result = run(cases, RunOptions(backends=["jax.lax"], out=folder / "out", registry=registry, check_stale=False))
    return {r["case"]: r for r in result.results}


@needs_env
def test_every_case_agrees_with_the_oracle_and_j1_is_a_known_divergence(jax_results):
    verdicts = {case: r["verdict"] for case, r in jax_results.items()}
    assert verdicts.pop("jt-crops-remove-output") == "xfail"
    assert jax_results["jt-crops-remove-output"]["actual_shape"] == [1, 4, 0, 6]
    assert set(verdicts.values()) == {"pass"}, {c: v for c, v in verdicts.items() if v != "pass"}


@needs_env
def test_native_parameters_and_conventions_in_the_real_calls(jax_results):
    below = jax_results["jt-valid-kernel-below-stride"]
    assert "padding=[(1, 1), (1, 1)]" in below["native_call"] and "'VALID'" in below["notes"][0]
    same = jax_results["jt-same-dilated-odd"]
    assert "padding='SAME'" in same["native_call"] and "('NHWC', 'OIHW', 'NHWC')" in same["native_call"]
    assert same["emulated"] and same["tolerance"]["accumulation"] == "float32"   # the bias is emulated
    grouped = jax_results["jt-grouped-crops-beyond-kernel"]
    assert "jax.lax.conv_general_dilated" in grouped["native_call"] and "(-1, 2)" in grouped["native_call"]
    assert grouped["tolerance"]["unit_roundoff"] == 2.0 ** -53          # float64 ran in float64
    for op in ("avg_pool2d", "max_pool2d"):
        ceil = jax_results[f"jp-{op}-ceil-nhwc"]
        assert ceil["emulated"] and "window_dimensions=(1, 3, 3, 1)" in ceil["native_call"]
        assert jax_results[f"jp-{op}-same"]["tolerance"]["unit_roundoff"] == 2.0 ** -53


SIGNATURES = r"""
import inspect, json
import jax
from harness.backends.jax_lax_params import PARAMETERS
main = {"conv2d_transpose": "conv_transpose", "conv2d": "conv_general_dilated", "avg_pool2d": "reduce_window",
        "max_pool2d": "reduce_window"}
out = {}
for op, decls in PARAMETERS.items():
    for key, d in decls.items():
        if d.name:
            fn = main[op] if d.call == "api" else d.call
            params = list(inspect.signature(getattr(jax.lax, fn)).parameters)
            out[f"{op}.{key}"] = [d.name in params, d.position is None or params[d.position] == d.name, fn]
print("SIGNATURES " + json.dumps(out))
"""


@needs_env
def test_declared_names_are_parameters_of_the_real_functions():
    python = envs.launch("jax.lax").python
    done = subprocess.run([python, "-c", SIGNATURES], capture_output=True, text=True, timeout=300, cwd=ROOT)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("SIGNATURES ")]
    assert line, done.stderr[-2000:]
    checked = json.loads(line[0][len("SIGNATURES "):])
    assert checked and all(name and position for name, position, _ in checked.values()), checked


@needs_env
@pytest.mark.parametrize("op", OPS)
def test_every_declaration_matches_the_calls_the_adapter_makes(op, jax_results):
    decls = mapping.declarations("jax.lax", op)
    assert {c.key for c in mapping.canonical(op)} - {"name"} <= set(decls)
    results = [r for r in jax_results.values() if r["op"] == op and r["native_call"]]
    for canon in mapping.canonical(op):
        decl = decls.get(canon.key)
        using = [r for r in results if canon.uses(r["params"], r["dtype"])]
        if decl is None or canon.key == "name":
            continue
        assert using, f"jax.lax.{canon.key}: no case ran that uses it"
        seen = 0
        for r in using:
            api = next(a for a in APIS[op] if a + "(" in r["native_call"])
            api_call, _ = _calls(r["native_call"], api)
            if decl.name and (decl.call == "api" or api.endswith(decl.call)):
                seen += _passes(decl, decl.name, decl.position, api_call, None)
            elif decl.name is None:
                assert canon.key not in {k.arg for k in api_call.keywords}, r["native_call"]
                seen += bool(r["emulated"]) if decl.emulated else 1
        assert seen, f"jax.lax.{canon.key}: declared {decl.name or 'emulated'!r}, never seen in a call"


@needs_env
def test_compiled_programs_are_reused_from_the_cache_with_the_same_answers(tmp_path, monkeypatch):
    """A second run loads XLA's executables from the persistent cache (nothing new is written) and
    answers bit for bit as the run that compiled them, also when the cache folder was moved in between
    (a CI cache restored at another path: the folder's path is not part of an entry's key)."""
    cache = tmp_path / "jax-cache"
    cases = load_suite([str(write(tmp_path / "t.yaml", CASES.format(op="conv2d_transpose", body=TRANSPOSE)))])
    answers, entries = [], []
    for attempt in range(2):
        if attempt:   # the folder moves, as a CI cache restored at another path does
            (tmp_path / "moved").mkdir()
            cache = cache.rename(tmp_path / "moved" / "jax-cache")
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(cache))   # the user's own cache wins over .conform's
        result = run(cases, RunOptions(backends=["jax.lax"], out=tmp_path / f"out{attempt}", check_stale=False,
                                       mode="both"))
        answers.append([(r["case"], r.get("gradient"), r["verdict"], r["metrics"] and (r["metrics"]["max_abs_err"], r["metrics"]["worst_actual"]))
                        for r in result.results])
        entries.append(sorted(p.name for p in cache.iterdir()))
    assert entries[0] and entries[1] == entries[0]
    assert answers[1] == answers[0] and any(gradient for _, gradient, _, _ in answers[0])
