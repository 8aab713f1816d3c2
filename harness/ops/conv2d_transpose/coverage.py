"""Coverage dimensions of conv2d_transpose and the pairwise generator's input (``harness.pairwise``).

Each case is classified into *levels* per parameter: the values the suite
must cover (stride ∈ {1, 2, 3}, kernel ∈ {1, …, 5, non-square}, dilation ∈
{1, 2}, groups ∈ {1, 2, C_in}, padding ∈ {same, valid, symmetric,
asymmetric}, output_padding ∈ {0, 1, s−1}, bias, layout, dtype) plus the
input data fill. A case may sit in several levels at once (``groups == C_in
== 2`` is both ``2`` and ``C_in``; ``output_padding == 1`` with stride 2 is
both ``1`` and ``s-1``); values outside the required levels are extras.

A row of levels becomes a concrete case through ``concrete`` (fixed small
shapes: input ``2×4×5×6``, so ``groups = C_in`` is 4 and channels divide
every group count). Which rows are valid is decided by the canonical
semantics itself; which a backend can run, by ``CAPABILITIES``.
"""

from __future__ import annotations

from typing import Optional

from harness.ops.spec import CoverageSpec

#: Parameter -> required levels, in display order.
REQUIRED: dict[str, list[str]] = {
    "stride": ["1", "2", "3"],
    "kernel_size": ["1", "2", "3", "4", "5", "non-square"],
    "dilation": ["1", "2"],
    "groups": ["1", "2", "C_in"],
    "padding": ["same", "valid", "symmetric", "asymmetric"],
    "output_padding": ["0", "1", "s-1"],
    "bias": ["false", "true"],
    "layout": ["NCHW", "NHWC"],
    "dtype": ["float16", "bfloat16", "float32", "float64"],
    "data": ["normal", "uniform", "ones", "arange", "impulse"],
}


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return tuple(value)  # type: ignore[return-value]


def _square(value) -> str:
    a, b = _pair(value)
    return str(a) if a == b else f"{a}x{b}"


def classify(params: dict, dtype: str, data: Optional[dict] = None) -> dict[str, set[str]]:
    """The levels a case covers, per parameter. ``params`` are canonical (Params.model_dump())."""
    kh, kw = _pair(params["kernel_size"])
    layout = params.get("layout", "NCHW")
    shape = params["input"]
    c_in = shape[3] if layout == "NHWC" else shape[1]
    groups = params.get("groups", 1)
    stride = _pair(params.get("stride", 1))
    op = _pair(params.get("output_padding", 0))
    padding = params.get("padding", 0)
    if isinstance(padding, int):
        padding = [padding] * 4
    levels: dict[str, set[str]] = {
        "stride": {_square(stride)},
        "kernel_size": {str(kh) if kh == kw else "non-square"},
        "dilation": {_square(params.get("dilation", 1))},
        "groups": {str(groups)} | ({"C_in"} if groups == c_in else set()),
        "bias": {"true" if params.get("bias") else "false"},
        "layout": {layout},
        "dtype": {dtype},
        "data": {(data or {}).get("x", "normal")},
    }
    if isinstance(padding, str):
        levels["padding"] = {padding}
    else:
        t, b, l, r = padding
        levels["padding"] = {"symmetric" if (t == b and l == r) else "asymmetric"}
    ops_levels = set()
    for o, s in zip(op, stride):  # each axis exercises its own output padding
        ops_levels.add(str(o))
        if o == s - 1:
            ops_levels.add("s-1")
    levels["output_padding"] = ops_levels
    return levels


# --------------------------------------------------------------------------- the pairwise generator's input

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
    "mindspore.ops": lambda k: k["dtype"] in ("float16", "float32"),   # mindspore_ops.UNSUPPORTED: the same kernels
}
YAML_FIELDS = ("input", "layout", "out_channels", "kernel_size", "stride", "dilation", "groups",
               "padding", "output_padding", "bias", "dtype")


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


def _fmt(value) -> str:
    if isinstance(value, list):
        return "x".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def case_id(fields: dict) -> str:
    parts = [f"{k}={_fmt(fields[k])}" for k in ("stride", "kernel_size", "dilation", "groups", "padding",
                                               "output_padding", "bias", "layout", "dtype")]
    parts.append(f"data={fields['data']['x']}")
    return "pairwise[" + ",".join(parts) + "]"


HEADER = """\
# GENERATED by harness/pairwise.py -- do not edit by hand. Regenerate with
#   .venv/bin/python -m harness.pairwise conv2d_transpose > cases/conv2d_transpose/pairwise.yaml
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

COVERAGE = CoverageSpec(
    required=REQUIRED, classify=classify, concrete=concrete, key=KEY, case_id=case_id,
    yaml_fields=YAML_FIELDS, header=HEADER, path="cases/conv2d_transpose/pairwise.yaml",
    default_row={"bias": "false", "layout": "NCHW", "dtype": "float32", "data": "normal"},
    capabilities=CAPABILITIES,
)
