"""The text of a reproducer's ``repro.py`` (``repro.py`` writes the folder).

The script imports numpy and that one framework (never conform), makes the
same native call the adapter made (same parameters, same emulation steps),
compares with ``y_ref`` from ``inputs.npz`` under the stored ``bound`` and
prints the same metrics. Exit codes: 0 agrees, 1 reproduces the failure, 2
cannot run.

The call is rendered from the adapter's own ``Program`` (Note [Native
programs] in ``harness/backends/program.py``): the one the worker ran (it
comes back with the answer), or for a call that crashed its worker or timed
out, the one the adapter builds for it in the parent. ``native_call`` is
rendered from the same program, so there is no second copy of any adapter's
argument mapping to drift. For the in-house backends (``numpy``, ``numba``)
"the framework" is conform's own kernel: its module source is embedded in the
script, so it still imports nothing from conform.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from harness.backends import program as programs
from harness.backends.program import CannotReproduce, Program
from harness.text import printable, python_literal as _literal

# ---------------------------------------------------------------- the script

def _comment(text: Any) -> str:
    """One safe comment line: no line breaks, no control characters, nothing UTF-8 cannot encode."""
    return printable(text)[:400]


def _plain(value):
    """numpy scalars -> Python numbers, so ``repr`` gives plain literals."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line if line else "" for line in lines]


_COMPARE = '''
def compare(y):
    """The metrics of conform's comparator (harness/compare.py), from the stored oracle output."""
    y = np.asarray(y, dtype=np.float64)
    r, limit = DATA["y_ref"], DATA["bound"]   # limit: conform's per-element bound on |y - y_ref|
    if y.size == 0:
        return {"max_abs_err": 0.0, "max_rel_err": 0.0, "mismatch_fraction": 0.0, "worst_index": None,
                "bound_ratio": 0.0, "nonfinite_mismatches": 0}
    finite_y, finite_r = np.isfinite(y), np.isfinite(r)
    nonfinite_bad = (finite_y != finite_r) | (~finite_r & ~((np.isnan(y) & np.isnan(r)) | (y == r)))
    both = finite_y & finite_r
    diff = np.where(both, np.abs(y - r), 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(diff == 0, 0.0, diff / limit)
        rel = np.where(both & (r != 0), diff / np.abs(r), 0.0)
    ratio = np.where(nonfinite_bad, np.inf, ratio)
    bad = nonfinite_bad | (diff > limit)
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return {"max_abs_err": float(diff.max()), "max_rel_err": float(rel.max()),
            "mismatch_fraction": float(bad.mean()), "worst_index": [int(i) for i in worst],
            "bound_ratio": float(ratio.max()), "nonfinite_mismatches": int(nonfinite_bad.sum())}


def first_line(exc):
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:500]


def main():
    try:
        y = call()
    except Exception as exc:  # the framework's answer
        if EXPECTS_ERROR:
            print(f"pass: rejected as expected: {type(exc).__name__}: {first_line(exc)}")
            return 0
        print(f"verdict: unexpected_error: {type(exc).__module__}.{type(exc).__name__}: {first_line(exc)}")
        return 1
    print(f"shape: {list(y.shape)} (expected {EXPECTED_SHAPE})")
    if EXPECTS_ERROR:
        print("verdict: missing_error: the call was accepted but the case expects rejection")
        return 1
    if list(y.shape) != EXPECTED_SHAPE:
        print(f"verdict: shape_mismatch: shape {list(y.shape)} != expected {EXPECTED_SHAPE}")
        return 1
    metrics = compare(y)
    for name in ("max_abs_err", "max_rel_err", "mismatch_fraction", "worst_index", "bound_ratio"):
        print(f"{name}: {metrics[name]!r}")
    if metrics["nonfinite_mismatches"]:
        print(f"nonfinite_mismatches: {metrics['nonfinite_mismatches']}")
    if metrics["mismatch_fraction"] == 0:
        print("verdict: pass (the failure did not reproduce)")
        return 0
    print(f"verdict: value_mismatch: {metrics['mismatch_fraction']:.2%} of elements outside the bound; "
          f"worst at {metrics['worst_index']} is {metrics['bound_ratio']:.3g}x its bound")
    return 1


if __name__ == "__main__":
    sys.exit(main())
'''


def _attempt(name: str, program: Program) -> list[str]:
    """The program as a function of its operands (the steps rebind their names to framework tensors)."""
    body = programs.lines(program) + [f"return np.asarray({program.output})"]
    return [f"def {name}({', '.join(program.operands)}):", *_indent(body), "", ""]


def _call(program: Program) -> list[str]:
    """``attempt`` (and ``attempt_fallback``) plus ``call()``, which runs them as the adapter does."""
    args = ", ".join(program.operands)
    out = _attempt("attempt", program)
    if program.fallback is None:
        return out + ["def call():", f"    return attempt({args})"]
    out += _attempt("attempt_fallback", program.fallback.program)
    return out + ["def call():",
                  "    try:",
                  f"        return attempt({args})",
                  "    except Exception as exc:",
                  f"        # conform's adapter does the same: {_comment(program.fallback.note.split('(')[0])}",
                  f"        if not any(text in str(exc) for text in {program.fallback.substrings!r}):",
                  "            raise",
                  f"    return attempt_fallback({args})"]


def render_script(record: dict, program: Optional[Program], tolerance: dict, expects_error: bool) -> str:
    """The standalone reproducer of one result (see the module docstring); ``program``: the adapter's."""
    backend, verdict = record["backend"], record["verdict"]
    header = ["#!/usr/bin/env python3",
              f"# Reproducer of a conform result: backend {_comment(backend)}, verdict {_comment(verdict)}.",
              f"# Case: {_comment(record['case'])}  ({_comment(record.get('file'))}:{_comment(record.get('line'))})",
              f"# conform's reason: {_comment(record.get('reason') or '-')}",
              "#",
              "# Standalone: needs numpy and the one framework; imports nothing from conform.",
              "# inputs.npz next to this file holds the canonical operands (float64, the operator's layouts),",
              "# the float64 oracle output y_ref, its magnitude B and conform's per-element bound on |y - y_ref|",
              "# (from TOLERANCE below; the failure is |y - y_ref| > bound anywhere, or NaN/Inf where y_ref has none).",
              "# Run it: python repro.py   (exit 0: agrees; 1: the failure reproduces; 2: cannot run)"]
    gradient = record.get("gradient")
    if gradient:
        header[2:2] = [f"# Gradient: the vector–Jacobian product with respect to {_comment(gradient)} for the cotangent "
                       "dy in inputs.npz;",
                       "# y_ref is the oracle's float64 gradient (canonical layout) and call() returns the backend's.",
                       f"# The framework's autodiff call: {_comment(record.get('gradient_call') or '-')}"]
    try:
        if program is None and gradient:
            raise CannotReproduce(f"the backward program of backend {backend!r} did not come back (the worker "
                                  "crashed or timed out before answering)")
        if program is None:
            raise CannotReproduce(f"backend {backend!r} did not describe its call (a third-party adapter, or a call "
                                  "it cannot pose)")
        prelude = programs.prelude(program)
    except CannotReproduce as exc:
        return "\n".join(header + ["", "import sys", "",
                                   f"print({('cannot reproduce: ' + str(exc))!r})",
                                   f"print({('native call as recorded: ' + str(record.get('native_call')))!r})",
                                   "sys.exit(2)", ""])
    header.append(f"# The adapter's call: {_comment(programs.native_call(program))}")
    for note in record.get("notes") or program.notes:
        header.append(f"# Emulated (as in conform's adapter): {_comment(note)}")
    expected = record.get("expected_shape")
    operands = [f"{name} = DATA[{name!r}] if {name!r} in DATA.files else None   # canonical, float64"
                for name in program.operands]
    lines = header + [
        "",
        "import os",
        "import sys",
        "",
        "",
        "def _cannot_run(kind, value, tb):",
        "    # An error outside the framework's call is this script's defect, not a reproduction: exit 2, never 1.",
        "    sys.__excepthook__(kind, value, tb)",
        "    sys.stdout.flush()",
        "    sys.stderr.flush()",
        "    os._exit(2)",
        "",
        "",
        "sys.excepthook = _cannot_run",
        "",
        "import numpy as np  # noqa: E402",
        "",
        *prelude,
        "",
        "HERE = os.path.dirname(os.path.abspath(__file__))",
        "DATA = np.load(os.path.join(HERE, 'inputs.npz'))",
        f"CASE = {record['case']!r}",
        *([f"GRADIENT = {gradient!r}   # the vjp w.r.t. this operand (y_ref and call() are gradients)"]
          if gradient else []),
        "PARAMS = " + _literal(_plain(record["params"])),
        f"DTYPE_NAME = {record['dtype']!r}",
        f"EXPECTED_SHAPE = {expected!r}",
        f"EXPECTS_ERROR = {bool(expects_error)!r}",
        "TOLERANCE = " + _literal(_plain(tolerance)),
        f"RECORDED_METRICS = {_literal(_plain(record.get('metrics')))}   # what conform measured",
        "",
        "# ---- the operands",
        *operands,
        "",
        "",
        *_call(program),
        "",
        "",
    ]
    return "\n".join(lines) + _COMPARE
