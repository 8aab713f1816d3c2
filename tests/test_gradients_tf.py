"""Gradients of tf.nn and tf.keras through TensorFlow's own ``tf.GradientTape`` (Note [Gradients] in
``harness/backends/autodiff.py``), judged against the independent float64 oracles.

Real runs: ``conform run --mode backward`` on both surfaces, every operator (NCHW and NHWC, explicit
asymmetric padding, bias, the issue's F2 configuration, NCHW calls whose gradient kernel only supports NHWC,
max-pool ties), each gradient a pass; the backward programs render as Python with ``tape_vjp`` embedded; and
a leaf declared with the wrong permutation is caught (tightness), so a pass means the layouts are right.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness.backends import autodiff
from harness.backends import program as programs
from harness.cases import load_file
from harness.runner import prepare
from tests.helpers import ROOT, conform, write

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None
                                or importlib.util.find_spec("keras") is None, reason="tensorflow/keras not installed")

CASES = {
    "conv2d_transpose": """
        op: conv2d_transpose
        defaults: {mode: backward}
        cases:
          - {id: f2-configuration, input: [1, 2, 4, 4], out_channels: 3, kernel_size: 3, stride: 2, padding: 1,
             output_padding: 1, bias: true}
          - {id: ct-explicit-asymmetric, input: [1, 3, 5, 6], out_channels: 2, kernel_size: 3, stride: 2,
             padding: [1, 0, 2, 1], output_padding: 1, bias: true}
          - {id: ct-same-nhwc, input: [1, 5, 6, 3], layout: NHWC, out_channels: 4, kernel_size: [3, 2], stride: 2,
             padding: same, bias: true}
          - {id: ct-float64-nchw, input: [1, 3, 5, 6], out_channels: 2, kernel_size: 3, stride: 2, padding: same,
             dtype: float64, bias: true}
    """,
    "conv2d": """
        op: conv2d
        defaults: {mode: backward}
        cases:
          - {id: c-explicit-asymmetric, input: [2, 2, 6, 6], out_channels: 4, kernel_size: 3,
             padding: [1, 0, 0, 1], bias: true}
          - {id: c-groups-nhwc, input: [1, 7, 8, 4], layout: NHWC, out_channels: 6, kernel_size: [3, 2], groups: 2,
             stride: 2, padding: same, bias: true}
    """,
    "avg_pool2d": """
        op: avg_pool2d
        defaults: {mode: backward}
        cases:
          - {id: ap-same, input: [1, 2, 5, 6], kernel_size: 3, stride: 2, padding: same}
          - {id: ap-valid-nhwc, input: [1, 5, 6, 2], layout: NHWC, kernel_size: 2, stride: 2, padding: valid,
             dtype: float64}
    """,
    "max_pool2d": """
        op: max_pool2d
        defaults: {mode: backward}
        cases:
          - {id: mp-same, input: [1, 2, 5, 6], kernel_size: 3, stride: 2, padding: same}
          - {id: mp-ties-overlapping, input: [1, 2, 6, 6], kernel_size: 3, stride: 1, padding: same,
             data: {x: ones}}
    """,
}
#: Passes on tf.nn; on tf.keras as well unless listed (what Keras cannot pose is unsupported, with a reason).
KERAS_ONLY = {"ap-count-pad"}
NN_ONLY = {"mp-explicit-nhwc"}
CASES["avg_pool2d"] += """
          - {id: ap-count-pad, input: [1, 2, 5, 6], kernel_size: 3, stride: 2, padding: same, count_include_pad: true}
"""
CASES["max_pool2d"] += """
          - {id: mp-explicit-nhwc, input: [1, 5, 6, 2], layout: NHWC, kernel_size: 3, stride: 2,
             padding: [1, 0, 1, 1]}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tf-gradients")
    for op, text in CASES.items():
        write(path / f"{op}.yaml", text)
    return path


@pytest.fixture(scope="module")
def results(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("tf-gradients-out")
    run = conform("run", folder, "--backends", "tf.nn,tf.keras", "--mode", "backward", "--out", out)
    assert run.returncode in (0, 1), run.stdout[-2000:] + run.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["backend"], r["case"], r["gradient"]): r for r in rows}


def test_every_gradient_agrees_with_the_oracle_on_both_surfaces(results):
    cases = {case for _, case, _ in results}
    assert len(cases) == 12
    for (backend, case, gradient), row in sorted(results.items()):
        assert gradient in ("x", "w", "b"), row
        cannot = (backend == "tf.nn" and case in KERAS_ONLY) or (backend == "tf.keras" and case in NN_ONLY)
        expected = "unsupported" if cannot else "pass"
        assert row["verdict"] == expected, (backend, case, gradient, row["verdict"], row["reason"])
        if expected == "pass":
            assert row["metrics"]["bound_ratio"] < 0.5, row["metrics"]   # not close: rounding, not luck


def test_convolutions_differentiate_weights_and_bias_and_the_call_records_the_pullback(results):
    for backend in ("tf.nn", "tf.keras"):
        for case in ("f2-configuration", "ct-explicit-asymmetric", "c-explicit-asymmetric", "c-groups-nhwc"):
            assert {g for b, c, g in results if (b, c) == (backend, case)} == {"x", "w", "b"}
            assert "tape_vjp(forward, " in results[(backend, case, "w")]["gradient_call"]
            assert results[(backend, case, "w")]["gradient_call"].endswith("[1](dy_native)")


def test_an_nchw_gradient_kernel_that_only_supports_nhwc_falls_back_to_nhwc(results):
    # oneDNN runs these NCHW forwards, but the CPU gradient kernels (MaxPoolingGradOp,
    # Conv2DCustomBackpropInputOp for explicit padding) only support NHWC: the whole backward call reruns in
    # NHWC, marked emulated and saying why.
    for case in ("mp-same", "c-explicit-asymmetric"):
        row = results[("tf.nn", case, "x")]
        assert row["verdict"] == "pass" and row["emulated"], row
        assert row["notes"][0].startswith("NCHW emulated") and "only supports NHWC" in row["notes"][0], row["notes"]


def _backward_programs(folder):
    from harness.backends.tf_keras import TfKerasBackend
    from harness.backends.tf_nn import TfNnBackend
    import harness.backward as backward
    for op in CASES:
        for case in load_file(folder / f"{op}.yaml"):
            call, _ = prepare(case)
            call, _ = backward.prepare(case, call, backward.gradient_operands(case))
            for backend in (TfNnBackend(), TfKerasBackend()):   # building a program imports no framework
                try:
                    program = getattr(backend, op)(call)
                except Exception:  # noqa: BLE001 - unsupported on that surface
                    continue
                yield backend.id, case.id, autodiff.differentiate(program, call)


def test_backward_programs_render_as_python_with_tape_vjp_embedded(folder):
    rendered = 0
    for backend, case, program in _backward_programs(folder):
        for each in (program, program.fallback.program if program.fallback else None):
            if each is None:
                continue
            prelude = programs.prelude(each)
            source = "\n".join(prelude + ["def attempt():"] + ["    " + line for line in programs.lines(each)])
            compile(source, f"<{backend} {case}>", "exec")
            assert "def tape_vjp(forward, *primals, sources=None):" in prelude
            assert not any(line.startswith(("import harness", "from harness")) for line in prelude)
            assert any(line.startswith("pair = tape_vjp(forward, ") for line in programs.lines(each)), backend
            rendered += 1
    assert rendered >= 20


def test_keras_weights_are_the_layer_variables_and_the_emulation_is_inside_the_tape(folder):
    programs_by = {(b, c): p for b, c, p in _backward_programs(folder)}
    lines = programs.lines(programs_by[("tf.keras", "ct-explicit-asymmetric")])
    pair = next(line for line in lines if line.startswith("pair = "))
    assert pair == "pair = tape_vjp(forward, x, sources=[x, net.kernel, net.bias])"
    body = lines[lines.index(next(line for line in lines if line.startswith("def forward("))):lines.index(pair)]
    assert "    y = net(x)" in body and "    y = crop(y)" in body and not any("set_weights" in b for b in body)
    lines = programs.lines(programs_by[("tf.keras", "c-explicit-asymmetric")])
    assert "    x_padded = pad(x)" in lines and "    y = net(x_padded)" in lines


PROBE = textwrap.dedent("""
    import dataclasses, json, sys
    from pathlib import Path
    from harness import backward
    from harness.backends.tf_nn import TfNnBackend
    from harness.cases import load_file
    from harness.runner import prepare
    backend = TfNnBackend()
    backend.setup()

    def verdicts(path, case_id, method, perm_of):
        case = next(c for c in load_file(Path(path)) if c.id == case_id)
        call, _ = prepare(case)
        call, references = backward.prepare(case, call, backward.gradient_operands(case))
        build = getattr(type(backend), method)
        def wrong(call, layout):
            program = build(backend, call, layout)
            leaves = tuple(dataclasses.replace(leaf, perm=perm_of.get(leaf.operand, leaf.perm))
                           for leaf in program.leaves)
            return dataclasses.replace(program, leaves=leaves)
        setattr(backend, method, wrong)
        outcome = backend.run(call)
        return {name: j.verdict for name, j, _, _ in backward.judgements(case, outcome, references, 60)}

    folder = sys.argv[1]
    print("RESULT " + json.dumps({
        "honest": verdicts(folder + "/conv2d_transpose.yaml", "f2-configuration", "_conv2d_transpose", {}),
        # kh and kw swapped on a square kernel: every shape right, the values transposed
        "swapped": verdicts(folder + "/conv2d_transpose.yaml", "f2-configuration", "_conv2d_transpose",
                            {"w": (3, 2, 1, 0)}),
        # an NHWC input read as NWHC
        "transposed": verdicts(folder + "/conv2d.yaml", "c-groups-nhwc", "_conv2d", {"x": (0, 3, 2, 1)}),
    }))
""")


def test_a_leaf_with_the_wrong_permutation_is_caught(folder):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(folder)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    found = json.loads(line[0][len("RESULT "):])
    assert found["honest"] == {"x": "pass", "w": "pass", "b": "pass"}
    assert found["swapped"] == {"x": "pass", "w": "value_mismatch", "b": "pass"}
    assert found["transposed"] == {"x": "shape_mismatch", "w": "pass", "b": "pass"}
