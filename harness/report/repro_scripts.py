"""The text of a reproducer's ``repro.py``, generated per backend (``repro.py`` writes the folder).

The script imports numpy and that one framework (never conform), converts
the layouts itself, makes the same native call the adapter made (same
parameters, same emulation steps), compares with ``y_ref`` from
``inputs.npz`` under the stored ``bound`` and prints the same metrics. Exit
codes: 0 agrees, 1 reproduces the failure, 2 cannot run.

The call code is generated from the record's parameters by mirroring each
adapter's mapping (``harness/backends/*.py``; tf.nn calls the adapter's own
``native_kwargs``), one ``Plan`` builder per
backend in ``PLANS``, with the exact Python values the adapter passed (tuples
stay tuples). The text the adapter recorded as ``native_call`` is reproduced
by the same generator; ``tests/test_reports.py`` checks the two agree on every
result of the suite, so the generator cannot drift from the adapters
unnoticed. For the in-house backends (``numpy``, ``numba``) "the framework" is
conform's own kernel: its module source is embedded in the script, so it
still imports nothing from conform.

A little over 400 lines: one plan per built-in backend plus the script's
fixed tail (``_COMPARE``); splitting them would separate each plan from the
template it fills.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Optional

import numpy as np

from harness.backends.base import fmt
from harness.backends.tf_nn import native_kwargs
from harness.text import printable, python_literal as _literal

# ---------------------------------------------------------------- call plans (mirror the adapters)

class Plan:
    """How a backend's call is written in a reproducer.

    ``setup``: lines building the operands from X, W, B_ (float64 canonical);
    ``call``: lines of the body of ``call()`` (returning the framework's output);
    ``to_numpy``: lines of the body of ``to_numpy(y)``; ``display``: the call as
    the adapter recorded it (``native_call``); ``prelude``: imports.
    """

    def __init__(self, framework: str, prelude: list[str], setup: list[str], call: list[str],
                 to_numpy: list[str], display: Optional[str], emulation: list[str] = ()):
        self.framework, self.prelude, self.setup, self.call = framework, prelude, setup, call
        self.to_numpy, self.display, self.emulation = to_numpy, display, list(emulation)


class CannotReproduce(Exception):
    pass


def _kwargs_text(kwargs: dict, render) -> str:
    return ", ".join(f"{k}={render(v)}" for k, v in kwargs.items())


def tf_call(p: dict, r: Optional[dict], dtype: str, x_shape, layout: str) -> tuple[str, str, bool]:
    """(code, display, has_bias) of ``tf.nn.conv2d_transpose`` as ``TfNnBackend`` calls it in ``layout``."""
    kwargs = native_kwargs(p, r, x_shape, layout)
    code = "tf.nn.conv2d_transpose(x, filters, " + _kwargs_text(kwargs, repr) + ")"
    display = "tf.nn.conv2d_transpose(x, filters, " + _kwargs_text(kwargs, fmt) + ")"
    if p["bias"]:
        code = f"tf.nn.bias_add({code}, bias, data_format={layout!r})"
        display = f"tf.nn.bias_add({display}, bias, data_format={layout!r})"
    return code, display, p["bias"]


def _tf_plan(record: dict, r: Optional[dict], x_shape) -> Plan:
    p, dtype, layout = record["params"], record["dtype"], record["params"]["layout"]
    recorded = record.get("native_call") or ""
    found = re.search(r"data_format='(NHWC|NCHW)'", recorded)
    if found:
        layouts = [found.group(1)]
    else:  # no call recorded (the framework raised): try as the adapter does, NCHW then NHWC
        layouts = [layout, "NHWC"] if layout == "NCHW" else [layout]
    out_dtype = "tf.float64" if dtype == "float64" else "tf.float32"
    setup = ["DTYPE = tf." + dtype,
             "",
             "",
             "def cast(a):  # values are exactly representable in DTYPE: float64 -> DTYPE is exact",
             "    return tf.cast(tf.constant(a, tf.float64), DTYPE)",
             "",
             "",
             "filters = cast(W.transpose(2, 3, 1, 0))   # TF filters: (kh, kw, C_out/groups, C_in)",
             "bias = cast(B_) if B_ is not None else None"]
    calls, display = [], None
    for fmt_layout in layouts:
        code, shown, _ = tf_call(p, r, dtype, x_shape, fmt_layout)
        display = display or shown
        x = "X.transpose(0, 2, 3, 1)" if fmt_layout == "NHWC" else "X"
        calls.append((fmt_layout, x, code))
    body = []
    if len(calls) == 1:
        fmt_layout, x, code = calls[0]
        body += ["global DATA_FORMAT", f"DATA_FORMAT = {fmt_layout!r}", f"x = cast({x})   # data_format {fmt_layout}",
                 f"return {code}"]
    else:
        (l1, x1, c1), (l2, x2, c2) = calls
        body += ["global DATA_FORMAT",
                 f"DATA_FORMAT = {l1!r}",
                 "try:",
                 f"    x = cast({x1})",
                 f"    return {c1}",
                 "except tf.errors.OpError as exc:",
                 "    # conform's adapter does the same: this CPU kernel (explicit padding) only supports NHWC.",
                 "    if 'only supports NHWC' not in str(exc):",
                 "        raise",
                 f"DATA_FORMAT = {l2!r}",
                 f"x = cast({x2})",
                 f"return {c2}"]
    to_numpy = [f"y = tf.cast(y, {out_dtype}).numpy()",
                "if DATA_FORMAT != LAYOUT:   # the call ran in the other layout: back to the case's",
                "    y = y.transpose(0, 3, 1, 2) if LAYOUT == 'NCHW' else y.transpose(0, 2, 3, 1)",
                "return y"]
    emulation = []
    if any(p["output_padding"]):
        emulation.append("output_padding requested through output_shape (TF has no output_padding)")
    if p["bias"]:
        emulation.append("bias added with tf.nn.bias_add (conv2d_transpose has no bias)")
    if layout == "NCHW" and "NHWC" in layouts:
        emulation.append("NCHW run in NHWC (this TF CPU kernel only supports NHWC for explicit padding)")
    return Plan("tensorflow", ["os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')", "import tensorflow as tf",
                               "", "DATA_FORMAT = None"],
                setup, body, to_numpy, display, emulation)


def torch_call(p: dict, r: Optional[dict]) -> tuple[dict, Optional[tuple], list[str]]:
    """Mirror of ``TorchFunctionalBackend.conv2d_transpose``: (kwargs, slice_from_full, notes)."""
    kw = dict(stride=tuple(p["stride"]), groups=p["groups"], dilation=tuple(p["dilation"]))
    slice_from_full, notes = None, []
    if r is None:
        if isinstance(p["padding"], str):
            if p["output_shape"] is not None:
                raise CannotReproduce("torch has no output_size: an unreachable output_shape cannot be posed")
            notes.append(f"padding {p['padding']!r} has no native form: padding=0 passed")
            kw.update(padding=(0, 0), output_padding=tuple(p["output_padding"]))
        else:
            t, bo, left, right = p["padding"]
            if t != bo or left != right:
                raise CannotReproduce("asymmetric padding has no native form in torch")
            kw.update(padding=(t, left), output_padding=tuple(p["output_padding"]))
    else:
        t, bo, left, right = r["crops"]
        if t == bo and left == right:
            kw.update(padding=(t, left), output_padding=tuple(r["output_padding"]))
            if isinstance(p["padding"], str) or p["output_shape"] is not None:
                notes.append(f"padding {p['padding']!r} / output_shape {p['output_shape']} expressed as "
                             f"padding={kw['padding']}, output_padding={kw['output_padding']}")
        else:
            slice_from_full = (t, left, *r["out_hw"])
            kw.update(padding=(0, 0), output_padding=(0, 0))
            notes.append(f"asymmetric crops {tuple(r['crops'])}: full output (padding=0) sliced, "
                         "bias added after slicing")
    return kw, slice_from_full, notes


def _torch_plan(record: dict, r: Optional[dict], x_shape) -> Plan:
    p, dtype = record["params"], record["dtype"]
    kw, slice_from_full, notes = torch_call(p, r)
    bias_arg = "None" if slice_from_full or not p["bias"] else "bias"
    code = f"torch.nn.functional.conv_transpose2d(x, weight, {bias_arg}, " + _kwargs_text(kw, repr) + ")"
    display = f"torch.nn.functional.conv_transpose2d(x, weight, {bias_arg}, " + _kwargs_text(kw, fmt) + ")"
    body = [f"y = {code}"]
    if slice_from_full:
        top, left, oh, ow = slice_from_full
        body += ["# emulated like conform's adapter: asymmetric crops sliced from the full output",
                 f"y = y[:, :, {top}:{top} + {oh}, {left}:{left} + {ow}]",
                 f"pad_h, pad_w = {oh} - y.shape[2], {ow} - y.shape[3]",
                 "if pad_h or pad_w:  # rows/cols past the full output are zeros",
                 "    y = torch.nn.functional.pad(y, (0, pad_w, 0, pad_h))",
                 "if bias is not None:",
                 "    y = y + bias.reshape(1, -1, 1, 1)"]
    body.append("return y")
    out_dtype = "torch.float64" if dtype == "float64" else "torch.float32"
    setup = [f"DTYPE = torch.{dtype}",
             "x = torch.from_numpy(X).to(DTYPE)            # canonical NCHW (torch has no NHWC here)",
             "weight = torch.from_numpy(W).to(DTYPE)       # (C_in, C_out/groups, kh, kw): torch's own layout",
             "bias = torch.from_numpy(B_).to(DTYPE) if B_ is not None else None"]
    to_numpy = [f"y = y.to({out_dtype}).numpy()",
                "return y.transpose(0, 2, 3, 1) if LAYOUT == 'NHWC' else y"]
    emulation = list(notes) + (["NHWC emulated: NCHW call, output permuted back"] if p["layout"] == "NHWC" else [])
    return Plan("torch", ["import torch", "import torch.nn.functional"], setup, body, to_numpy, display, emulation)


def mindspore_call(p: dict, r: Optional[dict]) -> tuple[dict, list[str]]:
    """Mirror of ``MindsporeNnBackend.conv2d_transpose``'s keyword arguments: (kw, notes)."""
    kw = dict(stride=tuple(p["stride"]), dilation=tuple(p["dilation"]), group=p["groups"])
    pad, shape, notes = p["padding"], p["output_shape"], []

    def is_default() -> bool:
        (h, w), (sh, sw) = r["in_hw"], r["stride"]
        if pad == "same":
            return tuple(r["out_hw"]) == (h * sh, w * sw)
        return tuple(r["out_hw"]) == tuple(r["full_hw"])

    if isinstance(pad, str) and (shape is None or (r is not None and is_default())):
        kw.update(pad_mode=pad, padding=0)
    elif isinstance(pad, str):
        if r is None:
            raise CannotReproduce("nn.Conv2dTranspose has no output_shape")
        kw.update(pad_mode="pad", padding=tuple(r["crops"]), output_padding=tuple(r["output_padding"]))
        notes.append(f"padding {pad!r} with output_shape {shape} expressed as pad_mode='pad'")
    else:
        op = tuple(p["output_padding"])
        if shape is not None and r is not None:
            op = tuple(r["output_padding"])
            notes.append(f"output_shape {shape} expressed as output_padding={op}")
        kw.update(pad_mode="pad", padding=tuple(pad), output_padding=op)
    return kw, notes


def _mindspore_plan(record: dict, r: Optional[dict], x_shape) -> Plan:
    p, dtype = record["params"], record["dtype"]
    kw, notes = mindspore_call(p, r)
    c_in, kernel, has_bias = x_shape[1], tuple(p["kernel_size"]), bool(p["bias"])
    tail = (f", has_bias={has_bias}, weight_init=weight, " + ("bias_init=bias, " if has_bias else "")
            + f"dtype=mindspore.{dtype})(x)")
    code = (f"mindspore.nn.Conv2dTranspose({c_in}, {p['out_channels']}, kernel_size={kernel!r}, "
            + _kwargs_text(kw, repr) + tail)
    display = (f"mindspore.nn.Conv2dTranspose({c_in}, {p['out_channels']}, kernel_size={fmt(kernel)}, "
               + _kwargs_text(kw, fmt) + tail)
    setup = [f"DTYPE = mindspore.{dtype}",
             "x = mindspore.Tensor(X, mindspore.float32).astype(DTYPE)        # canonical NCHW",
             "weight = mindspore.Tensor(W, mindspore.float32).astype(DTYPE)   # (C_in, C_out/group, kh, kw): "
             "MindSpore's own",
             "bias = mindspore.Tensor(B_, mindspore.float32).astype(DTYPE) if B_ is not None else None"]
    body = [f"y = {code}", "mindspore.runtime.synchronize()", "return y"]
    to_numpy = ["y = y.astype(mindspore.float32).asnumpy()",
                "return y.transpose(0, 2, 3, 1) if LAYOUT == 'NHWC' else y"]
    emulation = list(notes) + (["NHWC emulated: the cell has no data_format; NCHW call, output permuted back"]
                               if p["layout"] == "NHWC" else [])
    return Plan("mindspore", ["os.environ.setdefault('GLOG_v', '3')", "import mindspore",
                              "mindspore.set_context(mode=mindspore.PYNATIVE_MODE)"],
                setup, body, to_numpy, display, emulation)


def _module_source(module) -> list[str]:
    source = inspect.getsource(module)
    source = source.replace("from __future__ import annotations\n", "")
    return ["# ---- begin: source of conform's " + module.__name__ + " (embedded: this script imports no conform)",
            *source.splitlines(),
            "# ---- end of embedded source"]


def _numpy_plan(record: dict, r: Optional[dict], x_shape) -> Plan:
    from harness import data as data_module
    from harness.ops.conv2d_transpose import oracle
    dtype = record["dtype"]
    compute = "float32" if dtype == "bfloat16" else dtype
    prelude = _module_source(oracle)
    body = [f"y = reference(PARAMS, {{'x': X, 'w': W, 'b': B_}}, dtype=np.dtype({compute!r}))"]
    if dtype == "bfloat16":
        prelude += ["", *inspect.getsource(data_module.round_to_dtype).splitlines()]
        body.append("y = round_to_dtype(y, 'bfloat16')   # NumPy has no bfloat16")
    body.append("return y")
    display = f"harness.ops.conv2d_transpose.oracle.reference(params, arrays, dtype={compute!r})"
    return Plan("numpy", prelude, [], body, ["return np.asarray(y)"], display)


def _numba_plan(record: dict, r: Optional[dict], x_shape) -> Plan:
    from harness.ops.conv2d_transpose import numba_kernel as kernel
    if r is None:
        raise CannotReproduce("the numba kernel takes the resolved call; the semantics rejects this one")
    kwargs = dict(stride=tuple(r["stride"]), dilation=tuple(r["dilation"]), groups=r["groups"],
                  crops=tuple(r["crops"]), out_hw=tuple(r["out_hw"]), layout=record["params"]["layout"],
                  dtype=record["dtype"])
    text = "conv2d_transpose(X, W, B_, " + _kwargs_text(kwargs, repr) + ")"
    display = "harness.ops.conv2d_transpose.numba_kernel." + text.replace("(X, W, B_,", "(x, w, b,")
    return Plan("numba", _module_source(kernel), [], [f"return {text}"], ["return np.asarray(y)"], display)


PLANS = {"tf.nn": _tf_plan, "torch.functional": _torch_plan, "mindspore.nn": _mindspore_plan,
         "numpy": _numpy_plan, "numba": _numba_plan}


def plan_for(record: dict, resolved: Optional[dict], x_shape) -> Plan:
    builder = PLANS.get(record["backend"])
    if builder is None:
        raise CannotReproduce(f"no reproducer generator for backend {record['backend']!r} (third-party backend)")
    return builder(record, resolved, x_shape)


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
        y = to_numpy(call())
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


def render_script(record: dict, resolved: Optional[dict], tolerance: dict, expects_error: bool,
                  x_shape: tuple) -> str:
    """The standalone reproducer of one result (see the module docstring)."""
    backend, verdict = record["backend"], record["verdict"]
    header = ["#!/usr/bin/env python3",
              f"# Reproducer of a conform result: backend {_comment(backend)}, verdict {_comment(verdict)}.",
              f"# Case: {_comment(record['case'])}  ({_comment(record.get('file'))}:{_comment(record.get('line'))})",
              f"# conform's reason: {_comment(record.get('reason') or '-')}",
              "#",
              "# Standalone: needs numpy and the one framework; imports nothing from conform.",
              "# inputs.npz next to this file holds the canonical operands (x NCHW, w (C_in, C_out/groups, kh, kw),",
              "# b), the float64 oracle output y_ref, its magnitude B and conform's per-element bound on |y - y_ref|",
              "# (from TOLERANCE below; the failure is |y - y_ref| > bound anywhere, or NaN/Inf where y_ref has none).",
              "# Run it: python repro.py   (exit 0: agrees; 1: the failure reproduces; 2: cannot run)"]
    try:
        plan = plan_for(record, resolved, x_shape)
    except CannotReproduce as exc:
        return "\n".join(header + ["", "import sys", "",
                                   f"print({('cannot reproduce: ' + str(exc))!r})",
                                   f"print({('native call as recorded: ' + str(record.get('native_call')))!r})",
                                   "sys.exit(2)", ""])
    if plan.display:
        header.append(f"# The adapter's call: {_comment(plan.display)}")
    for note in record.get("notes") or plan.emulation:
        header.append(f"# Emulated (as in conform's adapter): {_comment(note)}")
    expected = record.get("expected_shape")
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
        *plan.prelude,
        "",
        "HERE = os.path.dirname(os.path.abspath(__file__))",
        "DATA = np.load(os.path.join(HERE, 'inputs.npz'))",
        f"CASE = {record['case']!r}",
        "PARAMS = " + _literal(_plain(record["params"])),
        f"DTYPE_NAME = {record['dtype']!r}",
        f"LAYOUT = {record['params']['layout']!r}   # of x as the case states it, and of the output",
        f"EXPECTED_SHAPE = {expected!r}",
        f"EXPECTS_ERROR = {bool(expects_error)!r}",
        "TOLERANCE = " + _literal(_plain(tolerance)),
        f"RECORDED_METRICS = {_literal(_plain(record.get('metrics')))}   # what conform measured",
        "",
        "X = DATA['x']                                    # (N, C_in, H, W), float64",
        "W = DATA['w']                                    # (C_in, C_out/groups, kh, kw), float64",
        "B_ = DATA['b'] if 'b' in DATA.files else None   # (C_out,) or None",
        *plan.setup,
        "",
        "",
        "def call():",
        *_indent(plan.call),
        "",
        "",
        "def to_numpy(y):",
        *_indent(plan.to_numpy),
        "",
    ]
    return "\n".join(lines) + _COMPARE
