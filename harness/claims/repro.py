"""The reproducer of a broken claim: ``repro/claims/<point>/repro.py`` and its ``inputs.npz``.

The script calls every side natively, as conform's adapters did (each side's
code rendered from the adapter's own ``Program``, Note [Native programs], the
same source as the single-result reproducers of ``harness/report/repro_scripts.py``),
on the operands conform used, and prints the difference. It imports numpy and
the frameworks, never conform. The sides may need different interpreters
(MindSpore needs NumPy < 2, TensorFlow and PyTorch share one): run it with
each; every side importable there runs, its output is saved beside the script
(``output_<side>.npy``) and the difference between every output saved so far
is printed. Exit 1 while the break reproduces (shapes differ, error behaviour
differs, or values further apart than both sides' bounds), 0 when it does not,
2 when it cannot tell yet (a side not run).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.backends import backend_class
from harness.backends import program as programs
from harness.backends.program import CannotReproduce
from harness.claims.load import side_call
from harness.text import printable, python_literal

_MAIN = '''

def to_nchw(y, layout):
    return np.transpose(y, (0, 3, 1, 2)) if layout == "NHWC" and y.ndim == 4 else y


def main():
    for index, name in enumerate(SIDES):
        try:
            y = to_nchw(np.asarray(FUNCTIONS[index](), dtype=np.float64), LAYOUTS[name])
        except ImportError as exc:
            print(f"{name}: not importable by this interpreter ({exc}); run this script with its own")
            continue
        except Exception as exc:  # the framework's answer
            y = np.array(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        np.save(os.path.join(HERE, OUTPUT.format(index)), y)
    outputs = {}
    for index, name in enumerate(SIDES):
        path = os.path.join(HERE, OUTPUT.format(index) + ".npy")
        if os.path.exists(path):
            outputs[name] = np.load(path)
            shown = outputs[name].item() if outputs[name].dtype.kind == "U" else list(outputs[name].shape)
            print(f"{name}: {shown}")
    if len(outputs) < len(SIDES):
        print("not every side has run yet: run this script with the interpreters of the others")
        return 2
    names = list(outputs)
    worst = 0.0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ya, yb = outputs[a], outputs[b]
            if (ya.dtype.kind == "U") != (yb.dtype.kind == "U"):
                print(f"{a} and {b}: one raises, the other returns: the break reproduces")
                return 1
            if ya.dtype.kind == "U":
                continue
            if ya.shape != yb.shape:
                print(f"{a} {list(ya.shape)} vs {b} {list(yb.shape)} (NCHW): the break reproduces")
                return 1
            diff = np.abs(ya - yb)
            limit = BOUNDS[a] + BOUNDS[b] if a in BOUNDS and b in BOUNDS else np.zeros(diff.shape)
            index = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else None
            print(f"{a} vs {b}: max |difference| {diff.max(initial=0.0):.6g} at NCHW {index}")
            worst = max(worst, float(np.max(diff / np.maximum(limit, 1e-300), initial=0.0)))
    if worst > 1:
        print(f"the outputs are {worst:.3g}x further apart than two correct implementations could be: "
              "the break reproduces")
        return 1
    print("the outputs agree within both sides' bounds: the break did not reproduce")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _comment(text) -> str:
    """One safe comment line: no line breaks, no control characters."""
    return printable(text)[:400]


def _function(index: int, name: str, program, operands: list[str]) -> list[str]:
    body = programs.prelude(program)
    body += [f"{o} = DATA[{f'side{index}_{o}'!r}]   # canonical operand, float64" for o in operands]
    body += programs.lines(program) + [f"return np.asarray({program.output})"]
    return [f"def side{index}():", f"    # {_comment(name)}: {_comment(programs.native_call(program))}",
            *("    " + line if line else "" for line in body), "", ""]


def write_reproducer(base: Path, spec, point: dict, runs: list, arrays: dict) -> str:
    """Write the reproducer of ``point`` under ``base/repro/claims/``; its path relative to ``base``."""
    folder = Path("repro", "claims", re.sub(r"[^A-Za-z0-9_.,=+-]", "_", point["id"]))
    (base / folder).mkdir(parents=True, exist_ok=True)
    stored, functions, bounds = {}, [], []
    for index, run in enumerate(runs):
        side = run.side
        program = run.outcome.program if run.outcome is not None and run.outcome.program else \
            backend_class(side.backend).describe(side_call(side, arrays[side.backend]))
        for name, value in arrays[side.backend].items():
            stored[f"side{index}_{name}"] = value
        limit = run.bound_nchw()
        if limit is not None:
            stored[f"bound{index}"] = limit
            bounds.append(f"BOUNDS[{side.backend!r}] = DATA['bound{index}']")
        try:
            if program is None:
                raise CannotReproduce(f"{side.backend} did not describe its call")
            functions += _function(index, side.backend, program, list(program.operands))
        except CannotReproduce as exc:
            functions += [f"def side{index}():", f"    raise RuntimeError({str(exc)!r})", "", ""]
    np.savez_compressed(base / folder / "inputs.npz", **stored)
    names = [run.side.backend for run in runs]
    header = ["#!/usr/bin/env python3",
              f"# Reproducer of conform claim {_comment(spec.id)} at {_comment(point['id'])} "
              f"({_comment(spec.file)}:{point['line']}): {_comment(point['verdict'])}.",
              f"# {_comment(point['reason'])}",
              f"# {_comment(point.get('contrast') or '')}",
              "# Calls every side natively, as conform's adapters did, on the operands in inputs.npz, and prints",
              "# the difference (NCHW). Run it with each side's interpreter (outputs are saved beside it).",
              "# Exit 1: the break reproduces; 0: it does not; 2: not every side has run yet.",
              "", "import os", "import sys", "", "import numpy as np", "",
              "HERE = os.path.dirname(os.path.abspath(__file__))",
              "DATA = np.load(os.path.join(HERE, 'inputs.npz'))",
              f"SIDES = {python_literal(names)}",
              f"LAYOUTS = {python_literal({run.side.backend: run.side.layout for run in runs})}",
              "OUTPUT = 'output_side{}'", "BOUNDS = {}", *bounds, "", ""]
    text = "\n".join(header + functions + [f"FUNCTIONS = [{', '.join(f'side{i}' for i in range(len(runs)))}]"])
    (base / folder / "repro.py").write_text(text + _MAIN, encoding="utf-8")
    return str(folder / "repro.py")
