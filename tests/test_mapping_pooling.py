"""``conform mapping`` for the pooling operators: the adapters' declarations against the real APIs and calls.

As ``test_mapping.py`` does for conv2d_transpose: every declared native name is
a parameter of the real function or cell (introspected in a subprocess per
framework); running the real adapters on suite cases that use each canonical
parameter, a declared name appears in the call the adapter made, an API
without the parameter never receives it, and an emulated concept is marked.
A concept a surface cannot pose at all says ``unsupported`` in its convention.
"""

from __future__ import annotations

import pytest
from test_mapping import ROOT, _calls, _passes, introspection_cache, needs_frameworks

from harness import mapping
from harness.cases import load_suite
from harness.runner import RunOptions, run

OPS = ["avg_pool2d", "max_pool2d"]
SURFACES = ["tf.nn", "torch.functional", "mindspore.nn", "tf.keras"]
#: Surfaces whose declarations are checked here; onnxruntime's real calls and ONNX schemas are checked in
#: tests/test_onnx_runtime.py (its framework lives in its own environment).
DECLARING = SURFACES + ["onnxruntime"]
API = {("tf.nn", "avg_pool2d"): "tf.nn.avg_pool2d", ("tf.nn", "max_pool2d"): "tf.nn.max_pool2d",
       ("torch.functional", "avg_pool2d"): "torch.nn.functional.avg_pool2d",
       ("torch.functional", "max_pool2d"): "torch.nn.functional.max_pool2d",
       ("mindspore.nn", "avg_pool2d"): "mindspore.nn.AvgPool2d", ("mindspore.nn", "max_pool2d"): "mindspore.nn.MaxPool2d",
       ("tf.keras", "avg_pool2d"): "keras.layers.AveragePooling2D", ("tf.keras", "max_pool2d"): "keras.layers.MaxPooling2D"}

SIGNATURES = r"""
import inspect, json, re, sys
which = sys.argv[1]
for arg in sys.argv[2:]:
    op = arg
    if which == "tf.nn":
        import tensorflow as tf
        out = {"api": list(inspect.signature(getattr(tf.nn, op)).parameters)}
    elif which == "torch.functional":
        import torch.nn.functional as F
        head = re.search(op + r"\((.*?)\)", getattr(F, op).__doc__).group(1)
        out = {"api": [part.split("=")[0].strip() for part in head.split(",")]}
        if op == "max_pool2d":   # a boolean dispatch: its docstring has no signature line
            out = {"api": list(inspect.signature(F._max_pool2d).parameters)}
    elif which == "tf.keras":
        import os
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import keras
        layer = {"avg_pool2d": keras.layers.AveragePooling2D, "max_pool2d": keras.layers.MaxPooling2D}[op]
        out = {"api": list(inspect.signature(layer.__init__).parameters)[1:]
                      + list(inspect.signature(keras.layers.Layer.__init__).parameters)[1:],   # **kwargs: dtype, name
               "forward": list(inspect.signature(layer.call).parameters)[1:]}
    else:
        from mindspore import nn
        cell = {"avg_pool2d": nn.AvgPool2d, "max_pool2d": nn.MaxPool2d}[op]
        out = {"api": list(inspect.signature(cell.__init__).parameters)[1:],
               "forward": list(inspect.signature(cell.construct).parameters)[1:]}
    print("SIGNATURE " + json.dumps([arg, out]))
"""


@pytest.mark.parametrize("op", OPS)
def test_declarations_name_canonical_parameters_and_cover_them(op):
    keys = {c.key for c in mapping.canonical(op)}
    for backend in DECLARING:
        decls = mapping.declarations(backend, op)
        assert set(decls) <= keys, set(decls) - keys
        assert keys - {"name"} <= set(decls), f"{backend} does not declare {keys - {'name'} - set(decls)}"
        for key, d in decls.items():
            assert d.name or d.convention, f"{backend}.{key}: say how the concept is expressed"
            assert not (d.name and d.emulated), f"{backend}.{key}: a native parameter is not emulated"
            assert d.name or d.emulated or d.via or "unsupported" in d.convention, f"{backend}.{key}: carried by what?"
            if d.via:
                assert any(o.name == d.via for o in decls.values()), f"{backend}.{key}: via {d.via!r} undeclared"


@pytest.fixture(scope="module")
def signatures():
    return introspection_cache()


@needs_frameworks
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", SURFACES)
def test_declared_names_are_parameters_of_the_real_api(backend, op, signatures):
    signature = signatures(SIGNATURES, backend, OPS)[op]
    for key, d in mapping.declarations(backend, op).items():
        if d.name is None:
            continue
        params = signature[d.call]
        assert d.name in params, f"{backend}.{key}: {d.name!r} is not a parameter of {params}"
        if d.position is not None:
            assert params[d.position] == d.name, f"{backend}.{key}: position {d.position} is {params[d.position]!r}"


def _pick_cases():
    """Up to 3 float32/float16 cases per operator and canonical parameter, spread over the suite."""
    chosen = {}
    for op in OPS:
        suite = [c for c in load_suite([str(ROOT / "cases" / op)])
                 if c.resolved is not None and c.dtype in ("float16", "float32")]
        for canon in mapping.canonical(op):
            using = [c for c in suite if canon.uses(c.canonical_params(), c.dtype)]
            for c in (using[:1] + using[len(using) // 2: len(using) // 2 + 1] + using[-1:]) if using else []:
                chosen[c.id] = c
    return list(chosen.values())


@pytest.fixture(scope="module")
def real_results(tmp_path_factory):
    result = run(_pick_cases(), RunOptions(backends=SURFACES, out=tmp_path_factory.mktemp("mapping"), jobs=2))
    return result.results


@needs_frameworks
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", SURFACES)
def test_every_declaration_matches_the_calls_the_adapter_makes(backend, op, real_results):
    decls = mapping.declarations(backend, op)
    by_name = {d.name: d for d in decls.values() if d.name}
    results = [r for r in real_results if r["backend"] == backend and r["op"] == op]
    assert results and all(r["verdict"] not in ("unexpected_error", "crash") for r in results)
    for canon in mapping.canonical(op):
        decl = decls.get(canon.key)
        using = [r for r in results if canon.uses(r["params"], r["dtype"]) and r["native_call"]]
        if decl is None or canon.key == "name" or (not using and "unsupported" in decl.convention):
            continue
        assert using, f"{backend}.{canon.key}: no suite case ran that uses it"
        seen = 0
        for r in using:
            api_call, forward_call = _calls(r["native_call"], API[backend, op])
            assert api_call is not None, r["native_call"]
            if decl.name:
                ok = _passes(decl, decl.name, decl.position, api_call, forward_call)
                assert ok or r["emulated"], f"{backend}.{canon.key}: {decl.name!r} not in {r['native_call']}"
                seen += ok
            else:
                # (unless the keyword is another concept's: Keras' padding is the mode, never explicit pads)
                assert canon.key not in {k.arg for k in api_call.keywords} or canon.key in by_name, r["native_call"]
                if decl.via:
                    via = by_name[decl.via]
                    assert _passes(via, via.name, via.position, api_call, forward_call), (decl.via, r["native_call"])
                seen += bool(r["emulated"]) if decl.emulated else 1
        assert seen, f"{backend}.{canon.key}: declared {'emulated' if decl.emulated else decl.name!r}, never seen"
