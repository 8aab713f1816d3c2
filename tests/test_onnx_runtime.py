"""The ``onnxruntime`` backend through the real ONNX Runtime, in its own environment (harness/envs.py).

One run of the runner over a few suite cases per operator (the worker starts under the
onnxruntime environment's interpreter) backs every assertion here:

* each canonical padding form reaches the node as ONNX's own attribute (``same`` as
  ``auto_pad='SAME_UPPER'``, ``same_lower`` as ``'SAME_LOWER'``, ``valid`` as ``'VALID'``, explicit
  padding as ``pads = [top, left, bottom, right]``) and the result agrees with the oracle;
* emulation is marked and says how (NHWC, transposed explicit padding with ``output_shape``,
  Conv's SAME with dilation that ONNX Runtime refuses);
* a dtype the CPU provider has no kernel for is ``unsupported`` with ONNX Runtime's reason;
* every ``PARAMETERS`` name is an attribute of the operator's ONNX schema (asked in the
  environment's interpreter) or ``make_node``'s ``inputs``, and appears in the calls made.

Skipped when the environment cannot be built (no ``uv``, no package index and no cache).
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from harness import divergences, mapping
from harness.backends.onnx_runtime import OnnxRuntimeBackend
from harness.cases import load_suite
from harness.envs import BuildError, ensure, target_of
from harness.globs import select_id
from harness.runner import RunOptions, run

ROOT = Path(__file__).resolve().parents[1]
BACKEND = "onnxruntime"
NODES = {"conv2d_transpose": "ConvTranspose", "conv2d": "Conv", "avg_pool2d": "AveragePool",
         "max_pool2d": "MaxPool"}
#: Suite cases (id globs) that exercise each form and each emulation.
PICKS = {
    "conv2d_transpose": ["padding-forms[stride=2,*", "same-lower*", "seed-1-*", "seed-3-*", "output-shape-same*", "output-shape-valid*",
                         "output-shape-explicit*", "dtype[dtype=*,stride=2,padding=same]", "bias*"],
    "conv2d": ["conv2d-same-lower[stride=2,*", "conv2d-same-strided*", "conv2d-dilation[dilation=2,padding=same]",
               "conv2d-valid*", "conv2d-dtype[*,stride=2,padding=same]"],
    "avg_pool2d": ["avg-padding-forms[stride=2,*", "avg-same-lower*", "avg-ceil*", "avg-count*"],
    "max_pool2d": ["max-padding-forms[stride=2,*", "max-same-lower*", "max-dilation*", "max-dtype*"],
}


def _environment_python() -> Path:
    try:
        return ensure(target_of(BACKEND))
    except BuildError as exc:
        pytest.skip(f"the onnxruntime environment cannot be built: {exc}")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    _environment_python()
    picked = []
    for op, globs in PICKS.items():
        picked += [c for c in load_suite([str(ROOT / "cases" / op)]) if select_id(c.id, globs)]
    registry = divergences.load(ROOT / "cases" / "known_divergences.yaml")
    result = run(picked, RunOptions(backends=[BACKEND], out=tmp_path_factory.mktemp("ort"), registry=registry))
    return [r for r in result.results if r["backend"] == BACKEND]


def _node(record: dict) -> ast.Call:
    """The ``onnx.helper.make_node`` call in a recorded native_call."""
    tree = ast.parse(record["native_call"], mode="eval")
    return next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "onnx.helper.make_node")


def _attrs(record: dict) -> dict:
    return {k.arg: ast.literal_eval(k.value) for k in _node(record).keywords}


def test_every_picked_result_passes_or_is_a_known_gap_or_divergence(results):
    assert {r["op"] for r in results} == set(NODES)
    bad = [(r["case"], r["verdict"], r["reason"]) for r in results
           if r["verdict"] not in ("pass", "unsupported", "xfail")]
    assert not bad, bad


def test_padding_forms_are_onnx_attributes(results):
    seen = set()
    for r in results:
        if not r["native_call"] or r["verdict"] != "pass":
            continue
        attrs, padding = _attrs(r), r["params"]["padding"]
        assert ast.literal_eval(_node(r).args[0]) == NODES[r["op"]]
        if isinstance(padding, str):
            expected = {"same": "SAME_UPPER", "same_lower": "SAME_LOWER", "valid": "VALID"}[padding]
            if "pads" in attrs:   # Conv's SAME with dilation: the fallback to the pads it resolves to
                assert r["emulated"] and any("expressed as its pads" in n for n in r["notes"]), r["notes"]
                seen.add("same-dilation-fallback")
                continue
            assert attrs["auto_pad"] == expected, (r["case"], attrs)
            seen.add(padding)
        else:
            t, b, left, right = padding
            assert attrs["auto_pad"] == "NOTSET" and attrs["pads"] == [t, left, b, right], (r["case"], attrs)
            seen.add("explicit")
    assert seen == {"same", "same_lower", "valid", "explicit", "same-dilation-fallback"}


def test_emulation_is_marked_and_native_parameters_are_not(results):
    kinds = set()
    for r in (r for r in results if r["verdict"] == "pass"):
        p = r["params"]
        if p.get("layout") == "NHWC":
            assert r["emulated"] and any(n.startswith("NHWC emulated") for n in r["notes"])
            kinds.add("layout")
        elif r["op"] == "conv2d_transpose" and p["output_shape"] and not isinstance(p["padding"], str):
            assert r["emulated"] and "output_padding" in _attrs(r) and "output_shape" not in _attrs(r)
            kinds.add("explicit-output-shape")
        elif r["op"] == "conv2d_transpose" and p["output_shape"]:
            assert not r["emulated"] and _attrs(r)["output_shape"] == p["output_shape"]
            kinds.add("output-shape")
        elif "pads" not in _attrs(r) or not isinstance(p["padding"], str):
            assert not r["emulated"], (r["case"], r["notes"])
        if r["op"] == "conv2d_transpose" and p["bias"]:
            assert ast.literal_eval(_node(r).args[1]) == ["X", "W", "B"]
            kinds.add("bias")
    assert kinds == {"layout", "explicit-output-shape", "output-shape", "bias"}


def test_dtypes_without_a_cpu_kernel_are_unsupported_with_the_reason(results):
    reasons = {(r["op"], r["dtype"]): r["reason"] for r in results if r["verdict"] == "unsupported"}
    assert "no float64 kernel for ConvTranspose(22)" in reasons[("conv2d_transpose", "float64")]
    assert "no bfloat16 kernel for Conv(22)" in reasons[("conv2d", "bfloat16")]
    assert not any(r["verdict"] == "unsupported" for r in results if r["op"] == "max_pool2d" and
                   r["dtype"] == "float64")     # MaxPool has a double kernel


SCHEMA = r"""
import json, sys, onnx.defs
print(json.dumps({op: sorted(onnx.defs.get_schema(op).attributes) for op in sys.argv[1:]}))
"""


def test_declared_names_are_attributes_of_the_onnx_schemas(results):
    python = _environment_python()
    done = subprocess.run([str(python), "-c", SCHEMA, *NODES.values()], capture_output=True, text=True,
                          timeout=120, check=True)
    schemas = json.loads(done.stdout.strip().splitlines()[-1])
    for op, node in NODES.items():
        decls = mapping.declarations(BACKEND, op)
        keys = {c.key for c in mapping.canonical(op)}
        assert keys - {"name"} <= set(decls) <= keys, (op, keys ^ set(decls))
        for key, d in decls.items():
            assert d.name is None or d.name == "inputs" or d.name in schemas[node], (op, key, d.name)
            assert not (d.name and d.emulated), (op, key)
        used = {k for r in results if r["op"] == op and r["native_call"] for k in _attrs(r)}
        for key, d in decls.items():
            if d.name not in (None, "inputs") and key not in ("output_shape", "output_padding", "padding"):
                assert d.name in used, (op, key, d.name, used)


def test_unsupported_reason_reads_only_missing_kernels():
    backend = OnnxRuntimeBackend()
    backend._dtype = "float64"
    gap = backend.unsupported_reason(RuntimeError(
        "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Conv(22) node with name ''"))
    assert gap == "ONNX Runtime's CPU provider has no float64 kernel for Conv(22)"
    assert backend.unsupported_reason(RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : pads")) is None


def test_registry_entries_match_exactly_the_divergent_results(tmp_path):
    """The default suite with an empty registry: every failure is an OX entry expecting its verdict, no entry
    claims a pass, every onnxruntime entry is exercised. (On fuzz cases OX5 can claim a pass whose shifted
    windows hold the same maxima, e.g. all-ones data: docs/findings.md#ox5.)"""
    from tests.helpers import conform
    from tests.test_registry_scope import exact_matches
    _environment_python()
    paths = ["cases"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("divergences: []\n")
    conform("run", *paths, "--backends", BACKEND, "--registry", empty, "--out", tmp_path / "raw", "--quiet")
    registry = divergences.load(ROOT / "cases" / "known_divergences.yaml")
    matched = exact_matches(json.loads((tmp_path / "raw" / "report.json").read_text()), registry)
    assert set(matched) == {e.id for e in registry.entries if e.backend == BACKEND}
