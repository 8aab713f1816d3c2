"""All-pairs (pairwise) cases for conv2d_transpose, generated and kept in the repo.

``python -m harness.pairwise > cases/conv2d_transpose/pairwise.yaml`` writes
the file; ``python -m harness.pairwise --check cases/conv2d_transpose/pairwise.yaml``
exits 1 if the file is not what the generator gives (the test suite runs it).

Factors and levels are ``harness.coverage.REQUIRED`` (stride, kernel, dilation,
groups, padding, output_padding, bias, layout, dtype, data fill). A row of
levels becomes a concrete case through ``concrete`` (fixed small shapes:
input ``2×4×5×6``, so ``groups = C_in`` is 4 and channels divide every group
count). Which rows are valid is decided by the canonical semantics itself
(``harness.ops.conv2d_transpose.resolve``): a pair no valid row contains (for
example ``output_padding=1`` with ``padding=same``: output padding combines
only with explicit padding) is reported by ``explain_uncovered`` with the
semantics' own reason, never generated.

The generator is a small deterministic greedy (AETG-style) covering-array
builder: each new row starts from one still-uncovered pair and fills the
other factors one by one with the level that covers most still-uncovered
pairs, keeping only levels for which a valid completion exists; of a few
such candidate rows the one covering most new pairs is kept. Which pairs a
row covers is measured by ``harness.coverage.classify`` on the concrete case,
the same function ``conform coverage`` uses. Ids name the concrete values, so
they do not depend on the order rows were found in.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Optional

from harness.coverage import PARAMETERS, REQUIRED, classify, pairs_of, required_pairs
from harness.ops import conv2d_transpose as semantics

BATCH, C_IN, H, W = 2, 4, 5, 6
OUT_CHANNELS = {"1": 3, "2": 6, "C_in": 4}          # every count divisible by its groups
GROUPS = {"1": 1, "2": 2, "C_in": C_IN}
NON_SQUARE_KERNEL = [3, 2]
SYMMETRIC_PADDING = 1
ASYMMETRIC_PADDING = [1, 0, 0, 2]                     # odd total on both axes, different per axis
#: data level -> fills: impulses and arange weights (asymmetric kernels) expose offset bugs.
DATA = {"normal": ("normal", "normal"), "uniform": ("uniform", "uniform"), "ones": ("ones", "arange"),
        "arange": ("arange", "arange"), "impulse": ("impulse", "arange")}
#: The factors whose levels decide whether a call is valid, or whether a backend can run it.
KEY = ("stride", "kernel_size", "dilation", "groups", "padding", "output_padding", "dtype")
#: Backends that cannot run every valid call, and what they can run (levels of KEY factors).
#: Measured on this machine's CPU builds (TensorFlow 2.21, MindSpore 2.10); the adapters report the
#: rest as ``unsupported`` with the framework's message, and ``conform coverage --report`` shows any
#: pair a backend never ran, so a wrong entry here is visible, never silent.
CAPABILITIES = {
    # Conv2DCustomBackpropInputOp (explicit padding, and every float64 call) has neither dilation nor
    # groups: "do not yet support dilation rates larger than 1", "Gradients for grouped convolutions
    # are not supported on CPU". SAME/VALID in float16/bfloat16/float32 go through oneDNN, which has both.
    "tf.nn": lambda k: not ((k["groups"] != "1" or k["dilation"] != "1")
                            and (k["padding"] in ("symmetric", "asymmetric") or k["dtype"] == "float64")),
    # harness.backends.mindspore_nn.UNSUPPORTED_DTYPES: no float64, no bfloat16 CPU kernel.
    "mindspore.nn": lambda k: k["dtype"] in ("float16", "float32"),
}
CANDIDATE_SEEDS = 24
OUT = "cases/conv2d_transpose/pairwise.yaml"


def concrete(row: dict[str, str]) -> dict:
    """Levels -> the case's fields (operator fields plus dtype and data)."""
    s = int(row["stride"])
    kernel = NON_SQUARE_KERNEL if row["kernel_size"] == "non-square" else int(row["kernel_size"])
    padding = {"same": "same", "valid": "valid", "symmetric": SYMMETRIC_PADDING,
               "asymmetric": ASYMMETRIC_PADDING}[row["padding"]]
    op = {"0": 0, "1": 1, "s-1": s - 1}[row["output_padding"]]
    layout = row["layout"]
    x_fill, w_fill = DATA[row["data"]]
    return {
        "input": [BATCH, H, W, C_IN] if layout == "NHWC" else [BATCH, C_IN, H, W],
        "layout": layout,
        "out_channels": OUT_CHANNELS[row["groups"]],
        "kernel_size": kernel,
        "stride": s,
        "dilation": int(row["dilation"]),
        "groups": GROUPS[row["groups"]],
        "padding": padding,
        "output_padding": op,
        "bias": row["bias"] == "true",
        "dtype": row["dtype"],
        "data": {"x": x_fill, "w": w_fill},
    }


def _operator_fields(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if k not in ("dtype", "data")}


DEFAULT_ROW = {"bias": "false", "layout": "NCHW", "dtype": "float32", "data": "normal"}


@lru_cache(maxsize=None)
def _semantics_verdict(key: tuple) -> Optional[str]:
    """None if the call with these levels of KEY is valid, else the canonical semantics' reason."""
    row = DEFAULT_ROW | dict(zip(KEY, key))
    try:
        semantics.resolve(semantics.Params.model_validate(_operator_fields(concrete(row))))
    except semantics.InvalidCall as exc:
        return exc.reason
    return None


class Space:
    """Every combination of KEY levels as one bit; a set of combinations is an int bitmask."""

    def __init__(self):
        self.keys = list(itertools.product(*(REQUIRED[f] for f in KEY)))
        self.level = {}
        for f_index, factor in enumerate(KEY):
            for level in REQUIRED[factor]:
                self.level[(factor, level)] = sum(1 << i for i, k in enumerate(self.keys) if k[f_index] == level)
        self.all = (1 << len(self.keys)) - 1
        self.valid = sum(1 << i for i, k in enumerate(self.keys) if _semantics_verdict(k) is None)
        self.runnable = {b: self.valid & sum(1 << i for i, k in enumerate(self.keys) if can(dict(zip(KEY, k))))
                         for b, can in CAPABILITIES.items()}

    def restrict(self, partial: dict[str, str], mask: int) -> int:
        for factor, level in partial.items():
            if factor in KEY:
                mask &= self.level[(factor, level)]
        return mask

    def feasible(self, partial: dict[str, str], mask: Optional[int] = None) -> bool:
        return self.restrict(partial, self.valid if mask is None else mask) != 0


@lru_cache(maxsize=1)
def space() -> Space:
    return Space()


def feasible(partial: dict[str, str], mask: Optional[int] = None) -> bool:
    """Whether some valid row (within ``mask``, default: every valid row) has these levels."""
    return space().feasible(partial, mask)


def explain_uncovered(pair: tuple) -> str:
    """Why a required pair is not in a suite: the semantics' reason, or 'feasible but missing'."""
    (a, va), (b, vb) = pair
    partial = {a: va, b: vb}
    if feasible(partial):
        return ("feasible but not in the suite: regenerate pairwise.yaml "
                "(python -m harness.pairwise > cases/conv2d_transpose/pairwise.yaml)")
    sp = space()
    mask = sp.restrict(partial, sp.all)
    reasons = Counter(_semantics_verdict(k) for i, k in enumerate(sp.keys) if mask >> i & 1)
    reasons.pop(None, None)
    reason = reasons.most_common(1)[0][0] if reasons else "no level combination has it"
    return (f"not expressible: the canonical semantics rejects every call with it ({reason}); "
            "no backend can run it as a valid call")


def covered_by(fields: dict) -> set[tuple]:
    """The required pairs a concrete case covers (via ``harness.coverage.classify``)."""
    params = semantics.Params.model_validate(_operator_fields(fields)).model_dump()
    levels = classify(params, fields["dtype"], fields["data"])
    return set(pairs_of(levels))


def _level_pairs(factor: str, level: str, row: dict[str, str]) -> list[tuple]:
    out = []
    for other, value in row.items():
        a, b = sorted(((factor, level), (other, value)), key=lambda fv: PARAMETERS.index(fv[0]))
        out.append((a, b))
    return out


def _build_row(seed: tuple, uncovered: set, mask: int) -> dict[str, str]:
    (a, va), (b, vb) = seed
    row = {a: va, b: vb}
    # Factors with most levels first: they are the hardest to pair up later.
    for factor in sorted((f for f in PARAMETERS if f not in row), key=lambda f: -len(REQUIRED[f])):
        best, best_gain = None, -1
        for level in REQUIRED[factor]:
            if factor in KEY and not feasible(row | {factor: level}, mask):
                continue
            gain = sum(p in uncovered for p in _level_pairs(factor, level, row))
            if gain > best_gain:
                best, best_gain = level, gain
        row[factor] = best
    return {f: row[f] for f in PARAMETERS}


def _runs_on(row: dict[str, str], mask: int) -> bool:
    return feasible({f: row[f] for f in KEY}, mask)


def _cover(rows: list[dict[str, str]], mask: int) -> None:
    """Append rows (within ``mask``) until every required pair feasible within ``mask`` is covered
    by some row within ``mask``."""
    wanted = required_pairs()
    uncovered = {p for p in wanted if feasible(dict(p), mask)}
    for row in rows:
        if _runs_on(row, mask):
            uncovered -= covered_by(concrete(row))
    seen_ids = {case_id_of(concrete(r)) for r in rows}
    while uncovered:
        seeds = [p for p in wanted if p in uncovered][:CANDIDATE_SEEDS]
        best, best_new = None, set()
        for seed in seeds:
            row = _build_row(seed, uncovered, mask)
            new = covered_by(concrete(row)) & uncovered
            if len(new) > len(best_new):
                best, best_new = row, new
        assert best is not None and best_new, "greedy step covered nothing (generator bug)"
        case_id = case_id_of(concrete(best))
        assert case_id not in seen_ids, case_id
        seen_ids.add(case_id)
        rows.append(best)
        uncovered -= best_new


def generate() -> list[dict[str, str]]:
    """Rows of levels covering every feasible required pair, and for each backend in
    ``CAPABILITIES`` every pair it can run, in rows it can run. Deterministic."""
    rows: list[dict[str, str]] = []
    _cover(rows, space().valid)
    for backend in CAPABILITIES:
        _cover(rows, space().runnable[backend])
    return rows


def _fmt(value) -> str:
    if isinstance(value, list):
        return "x".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def case_id_of(fields: dict) -> str:
    parts = [f"{k}={_fmt(fields[k])}" for k in ("stride", "kernel_size", "dilation", "groups", "padding",
                                               "output_padding", "bias", "layout", "dtype")]
    parts.append(f"data={fields['data']['x']}")
    return "pairwise[" + ",".join(parts) + "]"


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


HEADER = """\
# GENERATED by harness/pairwise.py -- do not edit by hand. Regenerate with
#   .venv/bin/python -m harness.pairwise > cases/conv2d_transpose/pairwise.yaml
# (tests/test_suite.py fails when this file and the generator disagree).
#
# All-pairs coverage: every pair of values of stride {1,2,3}, kernel
# {1,2,3,4,5,non-square 3x2}, dilation {1,2}, groups {1,2,C_in}, padding
# {same, valid, symmetric, asymmetric}, output_padding {0,1,s-1}, bias,
# layout {NCHW,NHWC}, dtype {float16,bfloat16,float32,float64} and data fill
# {normal,uniform,ones,arange,impulse} appears in at least one case, except
# pairs the canonical semantics rejects (output_padding 1 with same/valid:
# output padding combines only with explicit padding). Rows are added until
# tf.nn and mindspore.nn also each run every pair they can express (TF's CPU
# kernels: no groups/dilation with explicit padding or float64; MindSpore:
# float16/float32 only), so "ran on every backend" holds pair by pair, not
# just "some backend ran it". Why pairwise: bugs in
# this operator hide in combinations (odd total padding with stride > 1,
# output_padding with crops, groups with dilation, NHWC with groups, ...), and
# all pairs of {rows} factors take {n} cases instead of {full} for the full product.
# Shapes are small (input 2x4x5x6; C_in = 4, out_channels 3/6/4 for groups
# 1/2/4) so the whole file runs in seconds. Impulse inputs and arange
# (asymmetric) kernels expose offset bugs; ids name the concrete values.
"""


def render(rows: list[dict[str, str]]) -> str:
    cases = sorted((concrete(r) for r in rows), key=case_id_of)
    full = 1
    for f in PARAMETERS:
        full *= len(REQUIRED[f])
    out = [HEADER.replace("{rows}", str(len(PARAMETERS))).replace("{n}", str(len(cases)))
           .replace("{full}", str(full)).rstrip("\n"), "op: conv2d_transpose", "cases:"]
    for fields in cases:
        cid = case_id_of(fields)
        seed = int.from_bytes(hashlib.sha256(cid.encode()).digest()[:4], "little") % 100_000
        out.append(f"  - id: {cid}")
        for key in ("input", "layout", "out_channels", "kernel_size", "stride", "dilation", "groups",
                    "padding", "output_padding", "bias", "dtype"):
            out.append(f"    {key}: {_yaml_value(fields[key])}")
        out.append(f"    data: {{x: {fields['data']['x']}, w: {fields['data']['w']}, seed: {seed}}}")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.pairwise", description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, help="exit 1 if this file differs from the generator's output")
    args = parser.parse_args(argv)
    text = render(generate())
    if args.check:
        if args.check.read_text(encoding="utf-8") != text:
            print(f"{args.check} is out of date: regenerate with python -m harness.pairwise > {args.check}",
                  file=sys.stderr)
            return 1
        print(f"{args.check} is up to date")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
