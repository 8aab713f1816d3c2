"""The operator interface (Note [Operators] in ``harness/ops/__init__.py``), checked for every operator.

* the oracle and the gradient oracle import nothing from conform: not the semantics, not the adapters;
* the core names no operator: it knows them only through ``ops.OPS``;
* each operator's error inputs are rejected by its semantics, blaming the field they say, and the loader
  reports them as ``file:line: field: message`` unless the case expects the error;
* the magnitude bounds the oracle's output (``|y| ≤ B``) on the pairwise rows, or is 0 for an exact
  operator (``ErrorBound(0, 0)``: max), and fuzz cases are valid;
* adapters build their programs without importing a framework (so the parent can describe a call).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import json
import random
import subprocess
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import write

from harness import ops
from harness.cases import load_file
from harness.data import make_arrays
from harness.pairwise import for_op, operator_fields
from harness.yamlsrc import ProblemsError

ROOT = Path(__file__).resolve().parents[1]
SPECS = list(ops.OPS.values())
# Every top-level module of harness/ (new core modules are covered without being listed), the reports,
# and the adapters' shared machinery (the per-framework adapter modules name operators by design).
CORE = sorted(p.name for p in (ROOT / "harness").glob("*.py")) + [
    "report", "backends/__init__.py", "backends/base.py", "backends/program.py"]


@pytest.mark.parametrize("module", ["oracle", "gradient"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_oracle_imports_nothing_from_conform(spec, module):
    # The forward oracle and the gradient oracle (harness/ops/<op>/gradient.py) alike; Numba for an oracle's
    # own compiled loops (Note [Compiled oracle loops] in harness/ops/conv2d_transpose/oracle.py). The one
    # conform module allowed is the oracles' thread plumbing, which imports nothing from conform itself (so a
    # reproducer embeds it whole, ``_embedded_whole`` in harness/backends/program.py).
    module = importlib.import_module(spec.oracle.__module__.rsplit(".", 1)[0] + "." + module)
    imported = _imports(module) - {ORACLE_THREADS}
    assert {name.split(".")[0] for name in imported} <= {"__future__", "numpy", "math", "itertools", "functools",
                                                        "sys", "numba"}, imported


ORACLE_THREADS = "harness.kernels.oracle_threads"


def test_the_oracles_thread_plumbing_imports_nothing_from_conform():
    # Note [Oracle threads]: only the standard library, and Numba and threadpoolctl where installed.
    from harness.backends.program import _embedded_whole
    assert _embedded_whole(ORACLE_THREADS)
    imported = _imports(importlib.import_module(ORACLE_THREADS))
    assert {name.split(".")[0] for name in imported} <= {"__future__", "contextlib", "functools", "concurrent", "os",
                                                        "sys", "threading", "ctypes", "numba", "threadpoolctl"}, imported


def _imports(module) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return imported | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def _code_words(path: Path) -> set[str]:
    """Names and strings in a module's code, its docstrings and comments left out."""
    words, previous = set(), None
    for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if token.type == tokenize.NAME:
            words.add(token.string)
        elif token.type == tokenize.STRING and previous not in (tokenize.INDENT, tokenize.NEWLINE, tokenize.DEDENT,
                                                                 None, tokenize.NL):
            words.update(w.strip("'\"") for w in token.string.replace(".", " ").split())
        if token.type not in (tokenize.COMMENT, tokenize.NL):
            previous = token.type
    return words


def test_the_core_names_no_operator_and_no_operator_parameter():
    # Resolved.output_shape is the interface's own word (the loader compares expect.shape with it).
    distinctive = {name for spec in SPECS for name in spec.Params.model_fields if "_" in name} - {"output_shape"}
    names = {spec.name for spec in SPECS} | distinctive
    files = [p for entry in CORE for p in ((ROOT / "harness" / entry).rglob("*.py")
                                          if (ROOT / "harness" / entry).is_dir() else [ROOT / "harness" / entry])]
    found = {str(p.relative_to(ROOT)): sorted(_code_words(p) & names) for p in files}
    assert not {k: v for k, v in found.items() if v}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_error_inputs_are_rejected_by_the_semantics_and_the_loader(spec, tmp_path):
    assert spec.error_inputs, f"{spec.name} declares no error inputs"
    for error in spec.error_inputs:
        with pytest.raises(ops.InvalidCall) as info:
            spec.resolve(spec.Params.model_validate(error.fields))
        assert info.value.field == error.blames, (error.id, info.value.field, info.value.reason)
        case = {"id": error.id, **error.fields}
        path = write(tmp_path / f"{error.id}.yaml", yaml.safe_dump({"op": spec.name, "cases": [case]}))
        with pytest.raises(ProblemsError) as refused:
            load_file(path)
        assert any(p.field == error.blames and p.line >= 1 for p in refused.value.problems), refused.value.problems
        expected = {"op": spec.name, "cases": [{**case, "expect": {"error": True}}]}
        (loaded,) = load_file(write(tmp_path / f"{error.id}-expected.yaml", yaml.safe_dump(expected)))
        assert loaded.resolved is None and loaded.expects_error


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_magnitude_bounds_the_oracle_on_every_pairwise_row(spec):
    gen = for_op(spec.name)
    for row in gen.generate()[:40]:
        fields = gen.concrete(row)
        params = spec.Params.model_validate(operator_fields(fields))
        resolved = spec.resolve(params)
        arrays = make_arrays(spec.shapes(params), fields["data"] | {"seed": 3}, fields["dtype"], spec.operands)
        canonical = params.model_dump()
        y, magnitude = spec.oracle(canonical, arrays), spec.magnitude(canonical, arrays)
        assert y.shape == magnitude.shape == resolved.output_shape
        error = spec.error_bound(resolved)
        assert error.accumulation_length >= 0 and error.roundings in (0, 1, 2)
        if error.accumulation_length == 0 and error.roundings == 0:   # exact (max): B = 0, the bound is 0
            assert not magnitude.any(), gen.case_id_of(fields)
        else:
            assert np.all(np.abs(y) <= magnitude * (1 + 1e-12)), gen.case_id_of(fields)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz_cases_are_valid_and_reproducible(spec, tmp_path):
    from harness.fuzz import generate
    text = generate(30, seed=7, op=spec.name)
    assert text == generate(30, seed=7, op=spec.name)
    cases = load_file(write(tmp_path / "fuzz.yaml", text))
    assert len(cases) == 30 and all(c.resolved is not None and c.op == spec.name for c in cases)
    assert spec.fuzz(random.Random(1), "x", ("float32",))["dtype"] == "float32"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_numpy_backends_program_runs_standalone_as_a_reproducer_embeds_it(spec, tmp_path):
    """The ``numpy`` backend's program (the oracle, in float64: its compiled loops and threads), rendered as a
    reproducer renders it, runs with conform unimportable and gives the oracle's numbers; the oracles' thread
    plumbing is embedded once, however many of its names the oracle imports."""
    from harness.backends import program as programs
    from harness.backends.numpy_ref import NumpyBackend
    from harness.runner import prepare
    case = spec.fuzz(random.Random(4), "standalone", ("float64",))
    (loaded,) = load_file(write(tmp_path / "case.yaml", yaml.safe_dump({"op": spec.name, "cases": [case]})))
    call, reference = prepare(loaded)
    program = NumpyBackend().oracle(call)
    np.savez(tmp_path / "inputs.npz", **{name: call.arrays[name] for name in program.operands})
    # conform's editable install puts it on even an isolated interpreter's path: take it off by hand.
    script = ["import sys", "sys.modules['harness'] = None", "import numpy as np", "DATA = np.load('inputs.npz')"]
    script += [f"{name} = DATA[{name!r}]" for name in program.operands]
    script += programs.prelude(program) + programs.lines(program)
    script += [f"np.save('y.npy', np.asarray({program.output}))"]
    embedded = sum(line == f"# ---- embedded: {ORACLE_THREADS}" for line in script)
    assert embedded == (ORACLE_THREADS in _imports(importlib.import_module(spec.oracle.__module__)))
    if embedded:            # two ranges on two threads, however busy the machine: the pool, its ids, libc
        script += ["on_threads(lambda lo, hi: None, 2, 2)"]
    (tmp_path / "repro.py").write_text("\n".join(script) + "\n")
    done = subprocess.run([sys.executable, "-I", "repro.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    # Within a few ulps of the magnitude: on threads, one image's matrix products may be split by rows (their
    # sums then taken by BLAS in another order) where the parent's oracle ran on one thread.
    got = np.load(tmp_path / "y.npy")
    assert got.shape == reference.output.shape
    assert np.all(np.abs(got - reference.output) <= 1e-12 * reference.magnitude)


DESCRIBE = r"""
import importlib, json, sys
from harness import ops
from harness.backends import load_class, registry
from harness.cases import load_suite
from harness.runner import prepare
# The oracles' own compiled loops import Numba in the parent; off here, so what imports it is an adapter.
for spec in ops.OPS.values():
    oracle = importlib.import_module(spec.oracle.__module__)
    if hasattr(oracle, "compiled"):
        oracle.compiled = lambda loops: None
described = {}
for case in load_suite([sys.argv[1]]):
    call, _ = prepare(case)
    for backend, target in registry().items():
        cls = load_class(target)
        if cls.plans_calls:
            described[backend] = cls.describe(call) is not None
frameworks = sorted(m for m in ("tensorflow", "torch", "mindspore", "numba") if m in sys.modules)
print(json.dumps({"described": described, "frameworks": frameworks}))
"""


def test_adapters_describe_a_call_without_importing_a_framework():
    case_file = ROOT / "cases" / "conv2d_transpose" / "padding.yaml"
    proc = subprocess.run([sys.executable, "-c", DESCRIBE, str(case_file)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["frameworks"] == [] and found["described"] and all(found["described"].values()), found
