"""Gradients through MindSpore's own autodiff (``mindspore.vjp`` in PyNative mode), real MindSpore in its own
environment, through the runner: ``mindspore.nn`` (a cell's Parameters as the vjp's weights) and
``mindspore.ops`` (the primitives' Tensors as its inputs) agree with the float64 oracle gradients on each
operator, and the F2 configuration's gradients diverge on the cell as docs/findings.md#f2 says, and only
there: the registry makes exactly those results xfail."""

from __future__ import annotations

import pytest

from harness import backward, divergences
from harness.backends.autodiff import differentiate
from harness.backends.mindspore_nn import MindsporeNnBackend
from harness.backends.mindspore_ops import MindsporeOpsBackend
from harness.backends.program import lines as program_lines
from harness.cases import load_suite
from harness.runner import RunOptions, prepare, run
from tests.helpers import ROOT, write

SHIPPED = ROOT / "cases" / "known_divergences.yaml"
BACKENDS = ["mindspore.nn", "mindspore.ops"]

CASES = {
    "conv2d_transpose": """
        op: conv2d_transpose
        defaults: {mode: both}
        cases:
          - id: f2                    # the F2 configuration: issue 15's measurement
            input: [1, 2, 4, 4]
            out_channels: 3
            kernel_size: 3
            stride: 2
            padding: 1
            output_padding: 1
            bias: true
          - id: f2-no-output-padding  # the same call without the extra rows: no divergence
            input: [1, 2, 4, 4]
            out_channels: 3
            kernel_size: 3
            stride: 2
            padding: 1
            bias: true
          - id: ct-asymmetric
            input: [2, 4, 5, 4]
            out_channels: 2
            kernel_size: [3, 2]
            stride: [2, 1]
            dilation: [1, 2]
            groups: 2
            padding: [1, 0, 0, 1]
            bias: true
          - id: ct-same-nhwc
            input: [1, 4, 3, 2]
            layout: NHWC
            out_channels: 3
            kernel_size: 3
            stride: 2
            padding: same
            bias: true
    """,
    "conv2d": """
        op: conv2d
        defaults: {mode: both}
        cases:
          - id: c-asymmetric
            input: [2, 2, 6, 6]
            out_channels: 4
            kernel_size: 3
            stride: 2
            padding: [1, 0, 0, 1]
            bias: true
          - id: c-same-nhwc-groups
            input: [1, 5, 5, 4]
            layout: NHWC
            out_channels: 2
            kernel_size: 3
            groups: 2
            padding: same
    """,
    "avg_pool2d": """
        op: avg_pool2d
        defaults: {mode: both}
        cases:
          - {id: a-pad, input: [2, 2, 5, 5], kernel_size: 3, stride: 2, padding: 1, count_include_pad: true}
          - {id: a-valid, input: [1, 3, 6, 5], kernel_size: 2, stride: 2, padding: valid}
          - {id: a-pad-float64, input: [1, 2, 5, 5], kernel_size: 3, stride: 2, padding: 1, dtype: float64}
    """,
    "max_pool2d": """
        op: max_pool2d
        defaults: {mode: both}
        cases:
          - {id: m-pad, input: [2, 2, 5, 5], kernel_size: 3, stride: 2, padding: 1}
          - {id: m-same, input: [1, 3, 6, 7], kernel_size: 2, stride: 2, padding: same}
    """,
}


def _run(tmp_path, name: str, registry=None, only=None) -> dict:
    files = [write(tmp_path / f"{op}.yaml", text) for op, text in CASES.items()]
    cases = [c for c in load_suite([str(f) for f in files]) if only is None or c.id in only]
    out = run(cases, RunOptions(backends=BACKENDS, out=tmp_path / name, jobs=1, mode="both",
                                registry=registry or divergences.Registry()))
    found = {(r["backend"], r["case"], r["gradient"]): r for r in out.results}
    if any(r["verdict"] == "skipped" for r in found.values()):
        pytest.skip("the mindspore environment could not be built here: "
                    + next(r["reason"] for r in found.values() if r["verdict"] == "skipped"))
    return found


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    # The empty registry: every verdict is MindSpore's own.
    return _run(tmp_path_factory.mktemp("msgrad"), "raw")


def test_every_operator_has_gradients_that_agree_with_the_oracle_on_both_surfaces(results):
    expected = {"conv2d_transpose": {"x", "w", "b"}, "conv2d": {"x", "w", "b"}, "avg_pool2d": {"x"},
                "max_pool2d": {"x"}}
    for backend in BACKENDS:
        mine = {k: r for k, r in results.items() if k[0] == backend and k[2] is not None}
        for op, names in expected.items():
            assert {g for (_, _, g), r in mine.items() if r["op"] == op} == names, (backend, op)
        agreeing = {k: r for k, r in mine.items()
                    if not (backend == "mindspore.nn" and k[1] == "f2") and k[1] != "a-pad-float64"}
        assert all(r["verdict"] == "pass" for r in agreeing.values()), \
            {k: (r["verdict"], r["reason"]) for k, r in agreeing.items() if r["verdict"] != "pass"}
    # 4 + 2 + 3 + 2 cases; conv2d 'c-same-nhwc-groups' has no bias: 3·4 + 3 + 2 + 3 + 2 gradients per surface
    assert sum(1 for k in results if k[2] is not None) == 2 * (12 + 5 + 3 + 2)


def test_a_backward_kernel_without_the_dtype_is_unsupported_with_mindspores_reason(results):
    # float64 average pooling with padding: AvgPool3D's forward runs, its gradient kernel has no float64
    for backend in BACKENDS:
        assert results[backend, "a-pad-float64", None]["verdict"] == "pass"
        r = results[backend, "a-pad-float64", "x"]
        assert r["verdict"] == "unsupported", (r["verdict"], r["reason"])
        assert "AvgPool3DGrad" in r["reason"] and "no float64 kernel" in r["reason"]


def _backward_lines(tmp_path, backend, case_id: str) -> list[str]:
    """The backward program an adapter's forward program becomes, as reproducer lines (no MindSpore needed)."""
    files = [write(tmp_path / f"{op}.yaml", text) for op, text in CASES.items()]
    (case,) = [c for c in load_suite([str(f) for f in files]) if c.id == case_id]
    call, _ = prepare(case)
    call, _ = backward.prepare(case, call, backward.gradient_operands(case))
    return program_lines(differentiate(getattr(backend(), case.op)(call), call))


def test_the_cell_is_differentiated_with_respect_to_its_parameters_and_the_primitive_its_tensors(tmp_path):
    nn = _backward_lines(tmp_path, MindsporeNnBackend, "ct-asymmetric")
    assert "pair = mindspore.vjp(forward, x, weights=[net.weight, net.bias])" in nn
    def first(lines, start):
        return next(i for i, line in enumerate(lines) if line.startswith(start))
    assert first(nn, "def forward(x):") > first(nn, "net = ")   # the Parameters exist before the vjp
    assert "grads = (vjp_out[0][0], vjp_out[1][0], vjp_out[1][1])" in nn   # ((dx,), (dw, db)) in leaf order
    ops = _backward_lines(tmp_path, MindsporeOpsBackend, "ct-asymmetric")
    assert "pair = mindspore.vjp(forward, x, weight, bias)" in ops and first(ops, "def forward(x, weight, bias):")
    nhwc = _backward_lines(tmp_path, MindsporeOpsBackend, "c-same-nhwc-groups")
    assert any("numpy.transpose(dy, (0, 3, 1, 2))" in line for line in nhwc)   # dy enters in y's NCHW layout


def test_f2_gradients_diverge_on_the_cell_only(results):
    for gradient in ("x", "w", "b"):
        nn = results["mindspore.nn", "f2", gradient]
        assert nn["verdict"] == "value_mismatch" and nn["metrics"]["max_abs_err"] > 1, nn["reason"]
        assert results["mindspore.ops", "f2", gradient]["verdict"] == "pass"
        assert results["mindspore.nn", "f2-no-output-padding", gradient]["verdict"] == "pass"


def test_f2_gradients_are_xfail_with_the_project_registry(tmp_path):
    found = _run(tmp_path, "registry", divergences.load(SHIPPED), only={"f2"})
    for gradient in ("x", "w", "b"):
        r = found["mindspore.nn", "f2", gradient]
        assert r["verdict"] == "xfail", r["reason"]
        assert r["divergence"]["id"] == f"F2-mindspore-output-padding-gradient-{gradient}"
    assert found["mindspore.nn", "f2", None]["divergence"]["id"] == "F2-mindspore-output-padding-zeros"
    assert all(r["verdict"] == "pass" for (b, _, _), r in found.items() if b == "mindspore.ops")
