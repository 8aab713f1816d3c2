"""``conform mapping``: the table comes from the adapters' declarations, and the declarations are
checked against the adapters' real calls and the frameworks' real signatures, so neither can drift.

* every declared native name is a parameter of the real API (introspected in a subprocess per
  framework) at the declared position, if positional;
* running the real adapters (through the runner, one worker per framework) on suite cases that use
  each canonical parameter: a declared name appears in the call the adapter made (as a keyword, or
  as a positional argument at its position), an API without the parameter never receives it as a
  keyword, an emulated concept is marked ``emulated``, and a concept carried by another parameter
  (TF's kernel size by ``filters``) finds that parameter in the call;
* the tf.nn → mindspore.nn table has every parameter row of MindSpore's mapping page;
* docs/mapping.md is the current table.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import mapping
from harness.cases import load_suite
from harness.runner import RunOptions, run

ROOT = Path(__file__).resolve().parents[1]
OP = "conv2d_transpose"   # the operator of MindSpore's mapping page (PAGE_ROWS)
SURFACES = ["tf.nn", "torch.functional", "mindspore.nn", "tf.keras"]
#: Surfaces whose declarations are checked here; onnxruntime's real calls and ONNX schemas are checked in
#: tests/test_onnx_runtime.py (its framework lives in its own environment).
DECLARING = SURFACES + ["onnxruntime"]
MODULES = {"tf.nn": "tensorflow", "torch.functional": "torch", "mindspore.nn": "mindspore", "tf.keras": "keras"}
#: Operator -> surface -> the API its adapter calls (as recorded in native_call).
APIS = {"conv2d_transpose": {"tf.nn": "tf.nn.conv2d_transpose", "torch.functional":
                             "torch.nn.functional.conv_transpose2d", "mindspore.nn": "mindspore.nn.Conv2dTranspose",
                             "tf.keras": "keras.layers.Conv2DTranspose"},
        "conv2d": {"tf.nn": "tf.nn.conv2d", "torch.functional": "torch.nn.functional.conv2d",
                   "mindspore.nn": "mindspore.nn.Conv2d", "tf.keras": "keras.layers.Conv2D"}}
OPERATORS = list(APIS)
MISSING = [m for m in MODULES.values() if importlib.util.find_spec(m) is None]
needs_frameworks = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")

#: The parameter rows of MindSpore's page "Function Differences with tf.nn.conv2d_transpose"
#: (shared/seeds/000_e520289a08214ef6.txt): (TensorFlow, MindSpore), None for "-".
PAGE_ROWS = [("input", "x"), ("filters", "kernel_size"), ("output_shape", None), ("strides", "stride"),
             ("padding", "padding"), ("data_format", None), ("dilations", "dilation"), ("name", None),
             (None, "in_channels"), (None, "out_channels"), (None, "pad_mode"), (None, "group"),
             (None, "has_bias"), (None, "weight_init"), (None, "bias_init")]
#: Page rows the adapters contradict: TF's filters carry the weights (MindSpore's weight_init), and
#: MindSpore's kernel_size is only their shape (TF: filters.shape[0:2]). Reported in docs/mapping.md.
PAGE_PAIRS_SPLIT = {("filters", "kernel_size")}
#: Page rows with "-" on one side where the adapters pass the concept through a parameter of that side:
#: pad_mode's 'same'/'valid'/'pad' are "corresponding to the TensorFlow padding parameters" (the page's
#: own text: TF's padding string); weight_init's values are what TF takes as filters (the page says
#: TensorFlow "does not have this parameter"; a disagreement, reported in docs/mapping.md).
PAGE_DASH_CARRIED = {(None, "pad_mode"): "padding", (None, "weight_init"): "filters"}
SEED_PAGE = ROOT.parent / "shared" / "seeds" / "000_e520289a08214ef6.txt"

SIGNATURES = r"""
import inspect, json, re, sys
which = sys.argv[1]
for arg in sys.argv[2:]:
    api = arg.split(".")[-1]
    if which == "tf.nn":
        import tensorflow as tf
        out = {"api": list(inspect.signature(getattr(tf.nn, api)).parameters)}
    elif which == "torch.functional":
        import torch.nn.functional as F
        head = re.search(api + r"\((.*?)\)", getattr(F, api).__doc__).group(1)
        out = {"api": [part.split("=")[0].strip() for part in head.split(",")]}
    elif which == "tf.keras":
        import os
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import keras
        layer = getattr(keras.layers, api)
        out = {"api": list(inspect.signature(layer.__init__).parameters)[1:]
                      + list(inspect.signature(keras.layers.Layer.__init__).parameters)[1:],   # **kwargs: dtype, name
               "forward": list(inspect.signature(layer.call).parameters)[1:],
               "weights": list(inspect.signature(keras.layers.Layer.set_weights).parameters)[1:]}
    else:
        from mindspore import nn
        cell = getattr(nn, api)
        out = {"api": list(inspect.signature(cell.__init__).parameters)[1:],
               "forward": list(inspect.signature(cell.construct).parameters)[1:]}
    print("SIGNATURE " + json.dumps([arg, out]))
"""


def _decls(backend, op=OP):
    return mapping.declarations(backend, op)


def introspect(script: str, backend: str, args: list[str]) -> dict:
    """Run ``script backend ARGS...`` in a fresh process (the framework's real API, imported once for all of
    them): what it printed for each argument, as ``SIGNATURE [arg, signature]`` lines."""
    proc = subprocess.run([sys.executable, "-c", script, backend, *args], capture_output=True, text=True,
                          timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_v": "3", **os.environ})
    found = dict(json.loads(ln[len("SIGNATURE "):]) for ln in proc.stdout.splitlines() if ln.startswith("SIGNATURE "))
    assert set(found) == set(args), proc.stdout + proc.stderr
    return found


def introspection_cache():
    """``introspect``, remembered per (script, backend, arguments): the subprocess's cost is the framework's
    import, so each framework's is paid once for every operator."""
    seen = {}

    def signature_of(script: str, backend: str, args: list[str]) -> dict:
        key = (script, backend, tuple(args))
        if key not in seen:
            seen[key] = introspect(script, backend, args)
        return seen[key]
    return signature_of


@pytest.fixture(scope="module")
def signatures():
    return introspection_cache()


def _cell_name(cell: str):
    found = re.match(r"`([^`]+)`", cell)
    return found.group(1) if found else None


# --------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("op", OPERATORS)
def test_declarations_name_canonical_parameters_and_cover_them(op):
    keys = {c.key for c in mapping.canonical(op)}
    for backend in DECLARING:
        decls = _decls(backend, op)
        assert set(decls) <= keys, set(decls) - keys
        assert keys - {"name"} <= set(decls), f"{backend} does not declare {keys - {'name'} - set(decls)}"
        for key, d in decls.items():
            assert d.name or d.convention, f"{backend}.{key}: say how the concept is expressed"
            assert not (d.name and d.emulated), f"{backend}.{key}: a native parameter is not emulated"
            assert d.name or d.emulated or d.via or "unsupported" in d.convention, \
                f"{backend}.{key}: no parameter, not emulated: carried by what?"
            if d.via:
                assert any(o.name == d.via for o in decls.values()), f"{backend}.{key}: via {d.via!r} undeclared"


@needs_frameworks
@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("backend", SURFACES)
def test_declared_names_are_parameters_of_the_real_api(backend, op, signatures):
    signature = signatures(SIGNATURES, backend, [APIS[o][backend] for o in OPERATORS])[APIS[op][backend]]
    for key, d in _decls(backend, op).items():
        if d.name is None:
            continue
        params = signature[d.call]
        assert d.name in params, f"{backend}.{key}: {d.name!r} is not a parameter of {params}"
        if d.position is not None:
            assert params[d.position] == d.name, f"{backend}.{key}: position {d.position} is {params[d.position]!r}"


# --------------------------------------------------------------------------- the real calls


def _calls(native_call: str, api: str):
    """(the API call node, the call of its result or None) in a recorded native_call."""
    tree = ast.parse(native_call, mode="eval")
    target, forward = None, None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if ast.unparse(node.func) == api:
                target = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.func is target:
            forward = node
    return target, forward


def _passes(decl, name, position, api_call, forward_call) -> bool:
    call = forward_call if decl.call == "forward" else api_call
    if call is None:
        return False
    if position is not None:
        return len(call.args) > position and not (isinstance(call.args[position], ast.Constant)
                                                  and call.args[position].value is None)
    return name in {k.arg for k in call.keywords}


def _pick_cases(op):
    """Up to 3 runnable-everywhere cases of ``op`` per canonical parameter, spread over the suite."""
    suite = [c for c in load_suite([str(ROOT / "cases" / op)]) if c.resolved is not None]

    def runnable(c):
        p = c.canonical_params()
        explicit = not isinstance(p["padding"], str)
        return c.dtype in ("float16", "float32") and not (explicit and (p["groups"] > 1 or p["dilation"] != [1, 1]))

    chosen = {}
    for canon in mapping.canonical(op):
        using = [c for c in suite if runnable(c) and canon.uses(c.canonical_params(), c.dtype)]
        for c in (using[:1] + using[len(using) // 2: len(using) // 2 + 1] + using[-1:]) if using else []:
            chosen[c.id] = c
    return list(chosen.values())


@pytest.fixture(scope="module")
def real_results(tmp_path_factory):
    """One run of every operator's picked cases on SURFACES and issue 13's surfaces (SURFACE_APIS): one
    worker per framework surface for all of the checks below."""
    cases = [c for op in OPERATORS for c in _pick_cases(op)]
    backends = SURFACES + [b for b in SURFACE_APIS[OPERATORS[0]] if b not in SURFACES]
    return run(cases, RunOptions(backends=backends, out=tmp_path_factory.mktemp("mapping"), jobs=2)).results


@needs_frameworks
@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("backend", SURFACES)
def test_every_declaration_matches_the_calls_the_adapter_makes(backend, op, real_results):
    decls = _decls(backend, op)
    by_name = {d.name: d for d in decls.values() if d.name}
    results = [r for r in real_results if r["backend"] == backend and r["op"] == op]
    assert results and all(r["verdict"] not in ("unexpected_error", "crash") for r in results), \
        [(r["case"], r["verdict"], r["reason"]) for r in results if r["verdict"] in ("unexpected_error", "crash")]
    for canon in mapping.canonical(op):
        decl = decls.get(canon.key)
        using = [r for r in results if canon.uses(r["params"], r["dtype"]) and r["native_call"]]
        # Weights loaded with set_weights are not in native_call (tests/test_tf_keras.py checks their values).
        if decl is None or canon.key == "name" or decl.call == "weights" or (not using and "unsupported" in
                                                                             decl.convention):
            continue
        assert using, f"{backend}.{canon.key}: no suite case ran that uses it"
        seen = 0
        for r in using:
            api_call, forward_call = _calls(r["native_call"], APIS[op][backend])
            assert api_call is not None, r["native_call"]
            keywords = {k.arg for k in api_call.keywords}
            if decl.name:
                ok = _passes(decl, decl.name, decl.position, api_call, forward_call)
                assert ok or r["emulated"], f"{backend}.{canon.key}: {decl.name!r} not in {r['native_call']}"
                seen += ok
            else:
                # (unless the keyword is another concept's: Keras' padding is the mode, never explicit pads)
                assert canon.key not in keywords or canon.key in by_name, \
                    f"{backend} has no {canon.key!r} but got it: {r['native_call']}"
                if decl.via:
                    via = by_name[decl.via]
                    assert _passes(via, via.name, via.position, api_call, forward_call), (decl.via, r["native_call"])
                seen += bool(r["emulated"]) if decl.emulated else 1
        assert seen, f"{backend}.{canon.key}: declared {'emulated' if decl.emulated else decl.name!r}, never seen"


# --------------------------------------------------------------------------- the table


def test_table_reproduces_every_parameter_row_of_the_mapping_page():
    if SEED_PAGE.exists():   # the embedded rows are the page's rows
        text = SEED_PAGE.read_text(encoding="utf-8")
        found = re.findall(r"\| Parameter (\d+) \|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|", text)
        page = [(None if t in ("-", "") else t, None if m in ("-", "") else m) for _, t, m in found]
        assert page == PAGE_ROWS
    table = mapping.rows(OP, "tf.nn", "mindspore.nn")
    names = [(_cell_name(r["tf.nn"]), _cell_name(r["mindspore.nn"])) for r in table]
    tf_names = {t for t, _ in names if t}
    ms_names = {m for _, m in names if m}
    for tf_name, ms_name in PAGE_ROWS:
        assert tf_name is None or tf_name in tf_names, tf_name
        assert ms_name is None or ms_name in ms_names, ms_name
        if tf_name and ms_name:
            together = (tf_name, ms_name) in names
            assert together or (tf_name, ms_name) in PAGE_PAIRS_SPLIT, (tf_name, ms_name)
            assert not (together and (tf_name, ms_name) in PAGE_PAIRS_SPLIT), "the page row agrees now: update"
        else:   # "-" on one side: the row with the other side's name has no native parameter there
            rows = [n for n in names if (n[0] == tf_name if tf_name else n[1] == ms_name)]
            other = PAGE_DASH_CARRIED.get((tf_name, ms_name))
            assert rows and all((n[1] if tf_name else n[0]) == other for n in rows), (tf_name, ms_name, rows)
    assert len(table) >= len(PAGE_ROWS)


def test_measured_column_counts_agreement_divergence_and_gaps():
    def rec(case, backend, verdict, **kw):
        base = {"case": case, "backend": backend, "verdict": verdict, "op": OP, "dtype": "float32",
                "expected_shape": [1, 1, 2, 2], "params": {"stride": [2, 2], "padding": "valid", "dilation": [1, 1],
                                                           "output_padding": [0, 0], "groups": 1, "bias": False,
                                                           "layout": "NCHW", "output_shape": None}}
        return base | kw
    report = {"results": [
        rec("a", "tf.nn", "pass"), rec("a", "mindspore.nn", "pass"),
        rec("b", "tf.nn", "pass"), rec("b", "mindspore.nn", "xfail", original_verdict="shape_mismatch",
                                       divergence={"id": "F1-x", "reason": "r", "link": "l"}),
        rec("c", "tf.nn", "unsupported"), rec("c", "mindspore.nn", "pass", emulated=True),
    ]}
    st = mapping.measure(report, OP, "tf.nn", "mindspore.nn")["padding_mode"]
    assert (st.cases, st.agree, st.diverge, st.not_run["tf.nn"]) == (3, 1, 1, 1)
    assert "diverges on 1 — see F1" in st.text("tf.nn", "mindspore.nn")
    assert mapping.measure(report, OP, "tf.nn", "mindspore.nn")["groups"].text("a", "b") == "not exercised by the suite"
    # Another operator's results in the same report are neither counted nor listed as its divergences.
    other = {**rec("p", "mindspore.nn", "xfail", divergence={"id": "PL9-x", "reason": "r", "link": "l"}), "op": "x2d"}
    page = mapping.render(OP, "tf.nn", "mindspore.nn", {**report, "results": report["results"] + [other]})
    assert "measured on the 3 cases" in page and "F1-x" in page and "PL9-x" not in page
    # Gradient results (backward mode) do not replace the forward result a parameter mapping is about.
    grads = [{**rec("a", b, "value_mismatch"), "gradient": "w"} for b in ("tf.nn", "mindspore.nn")]
    st = mapping.measure({"results": report["results"] + grads}, OP, "tf.nn", "mindspore.nn")["padding_mode"]
    assert (st.cases, st.agree, st.diverge) == (3, 1, 1)


@pytest.mark.parametrize("op", OPERATORS)
def test_docs_mapping_md_is_the_current_table(op):
    doc = (ROOT / "docs" / "mapping.md").read_text(encoding="utf-8")
    sections = re.split(r"^# (?=\S+: )", doc, flags=re.M)   # one section per "# <op>: from → to" heading
    section = next((s for s in sections if s.startswith(f"{op}: ")), "")
    lines = [ln for ln in section.splitlines() if ln.startswith("| ") and "Parameter " in ln]
    generated = [ln for ln in mapping.render(op, "tf.nn", "mindspore.nn").splitlines()
                 if ln.startswith("| ") and "Parameter " in ln]

    def cells(line):   # everything but the measured column
        return re.split(r"(?<!\\)\|", line)[1:-2]
    assert [cells(ln) for ln in lines] == [cells(ln) for ln in generated], \
        f"regenerate: conform mapping {op} --from tf.nn --to mindspore.nn --report reports/report.json"


def test_conform_mapping_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "mapping", OP, "--from", "torch.functional",
                           "--to", "tf.nn", "--report", str(tmp_path / "none.json")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| Categories | Subcategories | canonical | torch.functional | tf.nn |" in proc.stdout
    assert "not measured (no report)" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "harness", "mapping", OP, "--from", "jax", "--to", "tf.nn"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown backend" in bad.stderr


# --------------------------------------------------------------------------- issue 13's surfaces

#: Operator -> surface -> the API its adapter builds (torch.nn: the module; mindspore.ops: the primitive).
SURFACE_APIS = {"conv2d_transpose": {"torch.nn": "torch.nn.ConvTranspose2d",
                                     "mindspore.ops": "mindspore.ops.Conv2DTranspose"},
                "conv2d": {"torch.nn": "torch.nn.Conv2d", "mindspore.ops": "mindspore.ops.Conv2D"}}
SURFACE_SIGNATURES = r"""
import inspect, json, sys
which = sys.argv[1]
for arg in sys.argv[2:]:
    api = arg.split(".")[-1]
    if which == "torch.nn":
        import torch
        cls = getattr(torch.nn, api)
        module = cls(2, 2, 1)
        out = {"api": list(inspect.signature(cls.__init__).parameters)[1:],
               "forward": list(inspect.signature(cls.forward).parameters)[1:], "state": list(module.state_dict())}
    else:
        from mindspore import ops
        out = {"api": list(inspect.signature(getattr(ops, api).__init__).parameters)[1:],
               "forward": list(getattr(ops, api)(2, 1).input_names),
               "bias_add": list(inspect.signature(ops.bias_add).parameters)}
    print("SIGNATURE " + json.dumps([arg, out]))
"""


@pytest.mark.parametrize("op", OPERATORS + ["avg_pool2d", "max_pool2d"])
@pytest.mark.parametrize("backend", ["torch.nn", "mindspore.ops"])
def test_new_surface_declarations_cover_the_canonical_parameters(backend, op):
    keys = {c.key for c in mapping.canonical(op)}
    decls = _decls(backend, op)
    assert set(decls) <= keys and keys - {"name"} <= set(decls), keys ^ set(decls)
    names = {d.name for d in decls.values() if d.name}
    for key, d in decls.items():
        assert (d.name or d.emulated or d.via) and not (d.name and d.emulated), f"{backend}.{key}"
        assert d.via is None or d.via in names, f"{backend}.{key}: via {d.via!r} undeclared"


@needs_frameworks
@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("backend", ["torch.nn", "mindspore.ops"])
def test_new_surface_names_are_parameters_of_the_real_api(backend, op, signatures):
    signature = signatures(SURFACE_SIGNATURES, backend,
                           [SURFACE_APIS[o][backend] for o in OPERATORS])[SURFACE_APIS[op][backend]]
    for key, d in _decls(backend, op).items():
        if d.name:
            params = signature[d.call]
            assert d.name in params, f"{backend}.{key}: {d.name!r} is not in {d.call} {params}"
            assert d.position is None or params[d.position] == d.name, f"{backend}.{key}: position {d.position}"


@needs_frameworks
@pytest.mark.parametrize("op", OPERATORS)
def test_new_surface_declarations_match_the_calls_the_adapters_make(op, real_results):
    from harness.backends import load_class, registry
    from harness.runner import prepare
    cases = {c.id: c for c in _pick_cases(op)}
    results = [r for r in real_results if r["op"] == op]
    for backend, api in SURFACE_APIS[op].items():
        decls = _decls(backend, op)
        mine = [r for r in results if r["backend"] == backend]
        assert mine and all(r["verdict"] not in ("unexpected_error", "crash", "skipped") for r in mine), \
            [(r["case"], r["verdict"], r["reason"]) for r in mine if r["verdict"] != "pass"]

        def carried(decl, r):
            if decl.call == "state":    # loaded into the module: the program's load_state_dict names it
                program = load_class(registry()[backend]).describe(prepare(cases[r["case"]])[0])
                return any("load_state_dict" in str(s.expr) and f"'{decl.name}'" in str(s.expr.args)
                           for s in program.steps)
            if decl.call == "bias_add":
                return r["native_call"].startswith("mindspore.ops.BiasAdd()(") and r["native_call"].endswith(", bias)")
            api_call, forward_call = _calls(r["native_call"], api)
            assert api_call is not None, r["native_call"]
            return _passes(decl, decl.name, decl.position, api_call, forward_call)

        by_name = {d.name: d for d in decls.values() if d.name}
        for canon in mapping.canonical(op):
            decl = decls.get(canon.key)
            using = [r for r in mine if canon.uses(r["params"], r["dtype"]) and r["native_call"]]
            if decl is None or canon.key == "name" or not using:
                continue
            seen = 0
            for r in using:
                if decl.name:
                    ok = carried(decl, r)
                    assert ok or r["emulated"], f"{backend}.{canon.key}: {decl.name!r} not in {r['native_call']}"
                    seen += ok
                else:
                    api_call, _ = _calls(r["native_call"], api)
                    assert canon.key not in {k.arg for k in api_call.keywords}, (backend, canon.key, r["native_call"])
                    if decl.via:
                        assert carried(by_name[decl.via], r), (backend, canon.key, decl.via, r["native_call"])
                    seen += bool(r["emulated"]) if decl.emulated else 1
            assert seen, f"{backend}.{canon.key}: never seen"
