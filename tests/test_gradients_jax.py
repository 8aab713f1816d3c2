"""jax.lax gradients through ``jax.vjp`` (Note [Gradients] in ``harness/backends/autodiff.py``).

* program building (no JAX needed): the backward program renders to valid Python, the differentiated
  function holds everything between the leaves and the result (the grouped kernel's regrouping, the bias
  reshape), NumPy only in the tail; ``split`` refuses a step that reads a leaf before every leaf is assigned;
* real JAX (the runner, one worker in the ``jax`` environment): every gradient of a few cases per operator
  (NHWC, asymmetric padding, bias, groups, ceil_mode, ties, a bfloat16 window of 289) passes against the
  float64 oracle; a dilated max pool is ``unsupported`` with JAX's own reason;
* tightness: on a max-pool tie JAX's dx equals the first-maximum oracle, and the judge rejects it against
  an oracle routing ties to the last maximum, so the tie cases above cannot pass by accident.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess

import numpy as np
import pytest

from harness import envs, ops
from harness.backends import program as programs
from harness.backends.autodiff import differentiate, split
from harness.backends.base import Call, Outcome
from harness.backends.jax_lax import JaxLaxBackend
from harness.backends.program import Function, Ref, Step
from harness.cases import load_suite
from harness.compare import Reference, judge
from harness.ops.max_pool2d import gradient as max_gradient
from harness.runner import RunOptions, run
from tests.helpers import ROOT, write

needs_env = pytest.mark.skipif(envs.uv_binary() is None, reason="uv is not installed (make setup installs it)")


def _call(op, dtype="float32", **fields) -> Call:
    spec = ops.get(op)
    params = spec.Params(**fields)
    arrays = {name: np.zeros(shape) for name, shape in spec.shapes(params).items()}
    return Call(op=op, case_id="t", params=params.model_dump(), resolved=spec.resolve(params).as_dict(),
                dtype=dtype, arrays=arrays, gradients=tuple(arrays))


GROUPED = dict(input=[1, 5, 5, 4], layout="NHWC", out_channels=6, groups=2, kernel_size=3, stride=2,
               padding=[3, 1, 0, 2], output_padding=1, bias=True)
BUILT = [("conv2d_transpose", GROUPED),
         ("conv2d", dict(input=[2, 4, 6, 6], out_channels=4, groups=2, kernel_size=3, padding=[1, 0, 0, 1],
                         bias=True, layout="NHWC")),
         ("avg_pool2d", dict(input=[1, 2, 7, 7], kernel_size=3, stride=2, padding=[1, 0, 0, 1], ceil_mode=True)),
         ("max_pool2d", dict(input=[1, 7, 7, 2], layout="NHWC", kernel_size=3, stride=2, padding="same"))]


# --------------------------------------------------------------------------- programs (no JAX)


@pytest.mark.parametrize("op, fields", BUILT, ids=[op for op, _ in BUILT])
def test_the_backward_program_renders_to_python_with_the_forward_inside_the_vjp(op, fields):
    call = _call(op, **fields)
    backward = differentiate(getattr(JaxLaxBackend(), op)(call), call)
    compile("\n".join(programs.lines(backward)), f"<{op} backward>", "exec")
    forward = next(s.expr for s in backward.steps if isinstance(s.expr, Function))
    assert forward.params == tuple(leaf.value.name for leaf in backward.leaves)
    assert not [s.target for s in forward.steps if re.search(r"(?<![\w.])numpy\.", programs.render(s.expr))], \
        "NumPy inside the differentiated function"
    assert dict(backward.gradients) == {name: f"grad_{name}" for name in call.arrays}
    assert "jax.vjp(forward, " in programs.render(next(s.expr for s in backward.steps if s.target == "pair"))


def test_the_grouped_kernel_is_regrouped_inside_the_differentiated_function():
    call = _call("conv2d_transpose", **GROUPED)
    forward = JaxLaxBackend().conv2d_transpose(call)
    prepare, body, tail = split(forward)
    assert [s.target for s in prepare] == ["x", "bias", "kernel"]
    assert [s.target for s in body][:2] == ["rhs", "y"] and [s.target for s in tail] == ["out"]
    assert {leaf.operand: leaf.perm for leaf in forward.leaves} == {"x": (0, 2, 3, 1), "w": None, "b": None}


def test_a_step_reading_a_leaf_before_the_last_leaf_is_assigned_is_refused():
    call = _call("conv2d", input=[1, 2, 5, 5], out_channels=2, kernel_size=3)
    forward = JaxLaxBackend().conv2d(call)
    steps = list(forward.steps)
    steps.insert(1, Step("x_padded", programs.Call("jax.numpy.pad", (Ref("x"), 1)), "prepare"))
    with pytest.raises(AssertionError, match="assign every leaf first"):
        split(dataclasses.replace(forward, steps=tuple(steps)))


# --------------------------------------------------------------------------- real JAX

CASES = {
    "conv2d": """
      - {id: g-conv-nhwc-asym-bias, input: [2, 6, 6, 4], layout: NHWC, out_channels: 4, kernel_size: 3,
         padding: [1, 0, 2, 1], stride: 2, bias: true}
      - {id: g-conv-groups-dilated, input: [1, 4, 7, 7], out_channels: 6, groups: 2, kernel_size: 3,
         dilation: 2, padding: same, bias: true, dtype: float64}
    """,
    "conv2d_transpose": """
      - {id: g-tr-f2, input: [1, 2, 4, 4], out_channels: 3, kernel_size: 3, stride: 2, padding: 1,
         output_padding: 1, bias: true}
      - {id: g-tr-grouped-nhwc-crops, input: [1, 5, 5, 4], layout: NHWC, out_channels: 6, groups: 2,
         kernel_size: 3, stride: 2, padding: [3, 1, 0, 2], output_padding: 1, bias: true}
      - {id: g-tr-same-f16, input: [2, 3, 5, 4], out_channels: 2, kernel_size: 3, stride: 2, padding: same,
         dtype: float16}
    """,
    "avg_pool2d": """
      - {id: g-avg-ceil-nhwc, input: [1, 5, 7, 2], layout: NHWC, kernel_size: 3, stride: 2,
         padding: [1, 0, 0, 1], ceil_mode: true}
      - {id: g-avg-include-pad, input: [2, 3, 6, 5], kernel_size: [3, 2], stride: [2, 3], padding: 1,
         count_include_pad: true, dtype: float64}
      - {id: g-avg-bf16-289, input: [1, 3, 34, 34], kernel_size: 17, dtype: bfloat16}
    """,
    "max_pool2d": """
      - {id: g-max-ties-padded, input: [1, 2, 6, 6], kernel_size: 3, stride: 1, padding: 1, data: {x: ones}}
      - {id: g-max-ties-ceil-nhwc, input: [2, 7, 7, 3], layout: NHWC, kernel_size: 3, stride: 2,
         padding: [1, 0, 0, 1], ceil_mode: true, data: {x: ones}}
      - {id: g-max-ties-arange, input: [1, 2, 9, 15], kernel_size: 3, stride: 1, data: {x: arange}}
      - {id: g-max-dilated, input: [1, 2, 7, 7], kernel_size: 2, dilation: 2}
    """,
}


@pytest.fixture(scope="module")
def gradients(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gjax")
    files = [write(folder / f"{op}.yaml", f"op: {op}\ndefaults: {{mode: both}}\ncases:\n{body}")
             for op, body in CASES.items()]
    result = run(load_suite([str(f) for f in files]), RunOptions(backends=["jax.lax"], out=folder / "out"))
    return {(r["case"], r["gradient"]): r for r in result.results}


@needs_env
def test_every_gradient_agrees_with_the_oracle(gradients):
    verdicts = {key: r["verdict"] for key, r in gradients.items() if key[1] is not None}
    dilated = verdicts.pop(("g-max-dilated", "x"))
    assert set(verdicts.values()) == {"pass"}, {k: (v, gradients[k]["reason"]) for k, v in verdicts.items()
                                                 if v != "pass"}
    assert {c for c, g in verdicts if g == "b"} == {"g-conv-nhwc-asym-bias", "g-conv-groups-dilated", "g-tr-f2",
                                                   "g-tr-grouped-nhwc-crops"}
    assert dilated == "unsupported"
    assert "VJP not implemented for select_and_gather" in gradients[("g-max-dilated", "x")]["reason"]
    assert gradients[("g-max-dilated", None)]["verdict"] == "pass"     # the forward is fine


@needs_env
def test_the_gradient_call_is_the_pullback_of_jax_vjp(gradients):
    grouped = gradients[("g-tr-grouped-nhwc-crops", "w")]
    assert "jax.lax.conv_general_dilated" in grouped["native_call"]
    assert gradients[("g-avg-bf16-289", "x")]["metrics"]["bound_ratio"] < 1.0


TIE_SCRIPT = r"""
import json, sys
import numpy as np
from harness import ops
from harness.backends.base import Call
from harness.backends.jax_lax import JaxLaxBackend
spec = ops.get("max_pool2d")
params = spec.Params(input=[1, 1, 3, 3], kernel_size=3)
x = np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0], [0.0, 0.0, 0.0]]]])
backend = JaxLaxBackend()
backend.setup()
for dtype in ("float32", "bfloat16"):
    call = Call(op="max_pool2d", case_id="tie", params=params.model_dump(), resolved=spec.resolve(params).as_dict(),
                dtype=dtype, arrays={"x": x, "dy": np.ones((1, 1, 1, 1))}, gradients=("x",))
    out = backend.run(call)
    print("TIE " + json.dumps([dtype, out.status, out.detail, out.gradients["x"].tolist() if out.gradients else None]))
"""


@needs_env
def test_jax_routes_a_tie_to_the_first_maximum_and_the_judge_tells_the_rules_apart(monkeypatch):
    python = envs.launch("jax.lax").python
    done = subprocess.run([python, "-c", TIE_SCRIPT], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"})
    rows = [json.loads(line[4:]) for line in done.stdout.splitlines() if line.startswith("TIE ")]
    assert len(rows) == 2, done.stderr[-2000:]
    params = ops.get("max_pool2d").Params.model_validate(dict(input=[1, 1, 3, 3], kernel_size=3)).model_dump()
    x, dy = np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0], [0.0, 0.0, 0.0]]]]), np.ones((1, 1, 1, 1))
    first = max_gradient.vjp(params, {"x": x}, dy)["x"]
    monkeypatch.setattr(max_gradient, "winner", lambda taps: len(taps) - 1 - np.argmax(taps[::-1], axis=0))
    last = max_gradient.vjp(params, {"x": x}, dy)["x"]
    for dtype, status, detail, dx in rows:
        assert status == "ok", detail
        assert np.array_equal(np.asarray(dx), first), (dtype, dx)      # row-major position 1 takes it all
        verdicts = [judge(Outcome("ok", output=np.asarray(dx)),
                          Reference(output=ref, magnitude=np.ones_like(ref), expected_shape=ref.shape),
                          expects_error=False, dtype=dtype).verdict for ref in (first, last)]
        assert verdicts == ["pass", "value_mismatch"], (dtype, verdicts)


@needs_env
def test_a_backward_call_that_crashes_with_its_forward_repeats_the_forward_failure(tmp_path):
    """J2: XLA aborts on this call's forward; in backward mode the crash is blamed on the forward (the forward
    call alone crashes too), so the gradient results carry forward_failed and the forward's registry entry."""
    out = tmp_path / "out"
    done = subprocess.run([os.sys.executable, "-m", "harness", "run", "cases/conv2d_transpose", "-k",
                           "kernel-wider-than-input-cropped-rows", "--backends", "jax.lax", "--mode", "backward",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "report.json").read_text())["results"]
    assert {r["gradient"] for r in results} == {"x", "w"}
    for record in results:
        assert record["forward_failed"] is True and record["verdict"] == "xfail"
        assert record["original_verdict"] == "crash" and record["divergence"]["id"].startswith("J2")
