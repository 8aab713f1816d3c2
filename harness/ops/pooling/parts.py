"""The parts of the pooling ``OpSpec`` both operators share: coverage, fuzz, report and mapping builders.

Each operator's own modules (``<op>/coverage.py``, ``fuzz.py``, ...) call
these with what sets it apart: ``avg_pool2d`` has ``count_include_pad``,
``max_pool2d`` has ``dilation``. Nothing here names a framework except the
capabilities, which ask ``pooling.frameworks`` (the adapters' own gaps).
"""

from __future__ import annotations

import random
from typing import Callable, Optional

from harness.ops import pooling
from harness.ops.pooling import frameworks
from harness.ops.spec import Canonical, CoverageSpec, ErrorBound, GradientSpec, InvalidCall, ReportSpec

#: The option each operator adds to the window fields, and its required levels.
EXTRA = {"avg_pool2d": ("count_include_pad", ["false", "true"]), "max_pool2d": ("dilation", ["1", "2"])}

BATCH, CHANNELS, H, W = 2, 3, 7, 8
NON_SQUARE_KERNEL = [3, 2]
SYMMETRIC_PADDING = 1
ASYMMETRIC_PADDING = [1, 0, 0, 1]
DATA = ["normal", "uniform", "ones", "arange", "impulse"]


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _square(value) -> str:
    a, b = _pair(value)
    return str(a) if a == b else f"{a}x{b}"


def required(op: str) -> dict[str, list[str]]:
    extra, levels = EXTRA[op]
    return {"stride": ["1", "2", "3"], "kernel_size": ["1", "2", "3", "non-square"],
            "padding": ["same", "valid", "symmetric", "asymmetric"], "ceil_mode": ["false", "true"],
            extra: levels, "layout": ["NCHW", "NHWC"], "dtype": ["float16", "bfloat16", "float32", "float64"],
            "data": list(DATA)}


def classifier(op: str) -> Callable:
    extra, _ = EXTRA[op]

    def classify(params: dict, dtype: str, data: Optional[dict] = None) -> dict[str, set[str]]:
        kh, kw = _pair(params["kernel_size"])
        padding = params.get("padding", 0)
        if isinstance(padding, int):
            padding = [padding] * 4
        if isinstance(padding, str):
            pad_level = padding
        else:
            pad_level = "symmetric" if frameworks.symmetric(padding) else "asymmetric"
        value = params.get(extra, False if extra == "count_include_pad" else 1)
        return {"stride": {_square(params.get("stride") or params["kernel_size"])},
                "kernel_size": {str(kh) if kh == kw else "non-square"}, "padding": {pad_level},
                "ceil_mode": {str(bool(params.get("ceil_mode"))).lower()},
                extra: {str(value).lower() if isinstance(value, bool) else _square(value)},
                "layout": {params.get("layout", "NCHW")}, "dtype": {dtype},
                "data": {(data or {}).get("x", "normal")}}
    return classify


def concreter(op: str) -> Callable:
    extra, _ = EXTRA[op]

    def concrete(row: dict[str, str]) -> dict:
        layout = row["layout"]
        fields = {
            "input": [BATCH, H, W, CHANNELS] if layout == "NHWC" else [BATCH, CHANNELS, H, W],
            "layout": layout,
            "kernel_size": NON_SQUARE_KERNEL if row["kernel_size"] == "non-square" else int(row["kernel_size"]),
            "stride": int(row["stride"]),
            "padding": {"same": "same", "valid": "valid", "symmetric": SYMMETRIC_PADDING,
                        "asymmetric": ASYMMETRIC_PADDING}[row["padding"]],
            "ceil_mode": row["ceil_mode"] == "true",
            extra: row[extra] == "true" if extra == "count_include_pad" else int(row[extra]),
            "dtype": row["dtype"],
            "data": {"x": row["data"]},
        }
        return fields
    return concrete


def _fmt(value) -> str:
    if isinstance(value, list):
        return "x".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def case_ider(op: str) -> Callable:
    extra, _ = EXTRA[op]

    def case_id(fields: dict) -> str:
        parts = [f"{k}={_fmt(fields[k])}" for k in ("stride", "kernel_size", "padding", "ceil_mode", extra,
                                                   "layout", "dtype")]
        return "pairwise[" + ",".join(parts + [f"data={fields['data']['x']}"]) + "]"
    return case_id


GAPS = {"tf.nn": frameworks.tf_gap, "torch.functional": frameworks.torch_gap, "torch.nn": frameworks.torch_gap,
        "mindspore.nn": frameworks.mindspore_gap, "mindspore.ops": frameworks.mindspore_ops_gap}


def capabilities(op: str, spec_of: Callable, default_row: dict) -> dict[str, Callable]:
    """Backend -> whether it can run the row a key's levels make (its adapter's own gap functions)."""
    concrete = concreter(op)

    def can(gap):
        def run(levels: dict[str, str]) -> bool:
            fields = concrete(default_row | levels)
            params_cls, resolve = spec_of()
            operator = {k: v for k, v in fields.items() if k not in ("dtype", "data")}
            params = params_cls.model_validate(operator)
            try:
                resolved = resolve(params).as_dict()
            except InvalidCall:
                return False
            return gap(op, params.model_dump(), resolved, fields["dtype"]) is None
        return run
    return {backend: can(gap) for backend, gap in GAPS.items()}


HEADER = """\
# GENERATED by harness/pairwise.py -- do not edit by hand. Regenerate with
#   .venv/bin/python -m harness.pairwise {op} > cases/{op}/pairwise.yaml
# (tests/test_suite.py fails when this file and the generator disagree).
#
# All-pairs coverage: every pair of values of stride {{1,2,3}}, kernel {{1,2,3,non-square 3x2}},
# padding {{same, valid, symmetric 1, asymmetric [1,0,0,1]}}, ceil_mode, {extra},
# layout {{NCHW,NHWC}}, dtype {{float16,bfloat16,float32,float64}} and data fill
# {{normal,uniform,ones,arange,impulse}} appears in at least one case, except pairs the
# canonical semantics rejects; rows are added until tf.nn, torch.functional and
# mindspore.nn each run every pair they can pose (harness/ops/pooling/frameworks.py).
# Why pairwise: pooling bugs hide in combinations (SAME's odd pixel with stride > 1,
# ceil_mode's extra window with padding, {why}). All pairs of {{rows}} factors take {{n}}
# cases instead of {{full}}. Input 2x3x7x8 (ceil_mode adds a window at strides 2 and 3).
"""


def coverage_spec(op: str, spec_of: Callable, why: str) -> CoverageSpec:
    extra, levels = EXTRA[op]
    default_row = {"layout": "NCHW", "dtype": "float32", "data": "normal"}
    return CoverageSpec(
        required=required(op), classify=classifier(op), concrete=concreter(op),
        key=("stride", "kernel_size", "padding", "ceil_mode", extra, "dtype"), case_id=case_ider(op),
        yaml_fields=("input", "layout", "kernel_size", "stride", "padding", "ceil_mode", extra, "dtype"),
        header=HEADER.format(op=op, extra=f"{extra} {{{','.join(levels)}}}", why=why),
        path=f"cases/{op}/pairwise.yaml", default_row=default_row,
        capabilities=capabilities(op, spec_of, default_row))


# --------------------------------------------------------------------------- fuzz

def random_case(op: str, rng: random.Random, case_id: str, dtypes, resolve: Callable, params_cls) -> dict:
    """One random valid case: draws until the semantics accepts it (most draws are valid)."""
    while True:
        h, w = rng.randint(1, 10), rng.randint(1, 10)
        kernel = [rng.randint(1, 4), rng.randint(1, 4)]
        case = {"id": case_id, "input": [rng.randint(1, 3), rng.randint(1, 4), h, w], "kernel_size": kernel,
                "stride": [rng.randint(1, 3), rng.randint(1, 3)], "ceil_mode": rng.random() < 0.4,
                "layout": rng.choice(["NCHW", "NHWC"]), "dtype": rng.choice(list(dtypes)),
                "data": {"x": rng.choice(DATA), "seed": rng.randint(0, 10**6)}}
        form = rng.choice(["same", "valid", "explicit", "explicit"])
        if form == "explicit":
            if rng.random() < 0.6:
                case["padding"] = [rng.randint(0, k // 2) for k in kernel for _ in range(2)]
                case["padding"] = [case["padding"][0]] * 2 + [case["padding"][2]] * 2
            else:
                case["padding"] = [rng.randint(0, k - 1) for k in kernel for _ in range(2)]
        else:
            case["padding"] = form
        if op == "avg_pool2d":
            case["count_include_pad"] = rng.random() < 0.5
        else:
            case["dilation"] = [rng.choice([1, 1, 2]), rng.choice([1, 1, 2])]
        if case["layout"] == "NHWC":
            n, c, hh, ww = case["input"]
            case["input"] = [n, hh, ww, c]
        operator = {k: v for k, v in case.items() if k not in ("id", "dtype", "data")}
        try:
            resolve(params_cls.model_validate(operator))
        except InvalidCall:
            continue
        return case


# --------------------------------------------------------------------------- report

def features(p: dict) -> set[str]:
    """Derived facts about a call's parameters that explain failure groups."""
    out = set()
    pad = p.get("padding")
    if isinstance(pad, (list, tuple)):
        out.add("padding explicit")
        if any(pad):
            out.add("padding>0")
        if not frameworks.symmetric(pad):
            out.add("padding asymmetric")
    if p.get("ceil_mode"):
        out.add("ceil_mode")
    if p.get("count_include_pad"):
        out.add("count_include_pad")
    if max(_pair(p.get("dilation", 1))) > 1:
        out.add("dilation>1")
    if {"kernel_size", "stride", "input"} <= set(p):
        try:
            d = pooling.derived(p, tuple(_pair(p.get("dilation", 1))))
        except (KeyError, TypeError, ValueError):
            return out
        for name in ("ceil_mode_adds_window", "window_touches_padding", "overlapping", "window_in_padding_only"):
            if d[name]:
                out.add(name.replace("_", " "))
    return out


def _padding_form(p: dict) -> Optional[str]:
    pad = p.get("padding")
    if isinstance(pad, str):
        return pad
    if isinstance(pad, (list, tuple)):
        return "explicit" if frameworks.symmetric(pad) else "explicit, asymmetric"
    return None


CAPABILITIES = (
    ("dtype", lambda r, p: r.get("dtype")),
    ("layout", lambda r, p: p.get("layout")),
    ("padding", lambda r, p: _padding_form(p)),
    ("ceil_mode", lambda r, p: None if "ceil_mode" not in p else str(bool(p["ceil_mode"])).lower()),
    ("count_include_pad", lambda r, p: None if "count_include_pad" not in p
     else str(bool(p["count_include_pad"])).lower()),
    ("dilation", lambda r, p: None if "dilation" not in p else ("1" if max(_pair(p["dilation"])) == 1 else ">1")),
)


def emulated(notes: list[str]) -> set[str]:
    """Which capability dimensions an adapter's emulation notes are about (what each note opens with)."""
    found = set()
    for note in notes or []:
        head = str(note).strip()
        if head.startswith(("NHWC", "NCHW")):
            found.add("layout")
        elif head.startswith("padding"):
            found.add("padding")
        elif head.startswith("ceil_mode"):
            found.add("ceil_mode")
        elif "bfloat16" in head[:40] or "float16" in head[:40]:
            found.add("dtype")
    return found


def plane_axes(p: dict) -> tuple[int, ...]:
    return (0, 3) if p.get("layout") == "NHWC" else (0, 1)


REPORT = ReportSpec(features=features, capabilities=CAPABILITIES, emulated=emulated, plane_axes=plane_axes)


# --------------------------------------------------------------------------- mapping

def _not_pair(value, default) -> bool:
    return list(_pair(value)) != [default, default]


def mapping_rows(op: str) -> tuple[Canonical, ...]:
    """The rows of ``conform mapping <op>``; MindSpore's page for tf.nn.avg_pool2d/max_pool2d first."""
    rows = [
        Canonical("x", "input `x`, (N, C, H, W) in `layout`", lambda p, d: True),
        Canonical("kernel_size", "`kernel_size` (kh, kw)", lambda p, d: True),
        Canonical("stride", "`stride` (sh, sw); default: the kernel", lambda p, d: True),
        Canonical("padding_mode", "`padding` 'same' / 'valid' (TensorFlow's rule)",
                  lambda p, d: isinstance(p["padding"], str), breakdown=lambda p: p["padding"]),
        Canonical("padding", "explicit `padding` [top, bottom, left, right]",
                  lambda p, d: not isinstance(p["padding"], str) and any(p["padding"])),
        Canonical("layout", "`layout` NCHW / NHWC", lambda p, d: p.get("layout") == "NHWC"),
        Canonical("ceil_mode", "`ceil_mode` (an extra window over the end)", lambda p, d: bool(p["ceil_mode"])),
    ]
    if op == "avg_pool2d":
        rows.append(Canonical("count_include_pad", "`count_include_pad` (canonical default false)",
                              lambda p, d: True, breakdown=lambda p: str(p["count_include_pad"]).lower()))
    else:
        rows.append(Canonical("dilation", "`dilation` (dh, dw)", lambda p, d: _not_pair(p["dilation"], 1)))
    rows += [Canonical("name", "(an op name: no canonical meaning)", lambda p, d: False),
             Canonical("dtype", "`dtype` (other than float32)", lambda p, d: d != "float32")]
    return tuple(rows)


def gradient(vjp: Callable, roundings: int) -> GradientSpec:
    """The pooling operators' backward pass (Note [Pooling gradient error bound]).

    Note [Pooling gradient error bound]
    -----------------------------------
    ``dx`` at an input element sums the shares of the windows that cover it
    (average: ``dy / count`` each, two roundings with the division; maximum:
    the ``dy`` of the windows it wins, one rounding). At most
    ``⌈span_h / s_h⌉ · ⌈span_w / s_w⌉`` windows cover an element (``span``:
    the dilated window), which is ``K``. ``x`` enters only through the
    window counts or the routing, so ``B`` is the gradient oracle on ``|dy|``
    with the same ``x``.
    """
    def magnitude(params: dict, arrays: dict, dy):
        import numpy as np
        return vjp(params, arrays, np.abs(dy))

    def error_bounds(params: dict, arrays: dict, dy) -> dict[str, ErrorBound]:
        (kh, kw), (dh, dw) = _pair(params["kernel_size"]), _pair(params.get("dilation", 1))
        sh, sw = _pair(params.get("stride") or params["kernel_size"])
        covering = -(-(dh * (kh - 1) + 1) // sh) * -(-(dw * (kw - 1) + 1) // sw)
        return {"x": ErrorBound(covering, roundings=roundings)}

    return GradientSpec(vjp=vjp, magnitude=magnitude, error_bounds=error_bounds, operands=("x",))
