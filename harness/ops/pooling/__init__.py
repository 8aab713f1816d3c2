"""Canonical window semantics shared by the pooling operators (``avg_pool2d``, ``max_pool2d``).

This module owns what a pooling *window* is, independent of any framework and
of what is computed over it: the case fields both operators have
(``PoolParams``), how every padding form resolves to per-side padding, how
many windows ``ceil_mode`` gives, and which windows reach into the padding or
past it (``resolve_windows``). Each operator's ``semantics`` module adds its
own fields, checks and Note; the oracles (``<op>/oracle.py``) re-derive all of
this from the definition and import nothing from here.

Note [Pooling windows]
----------------------
Per spatial axis, with input size ``H``, kernel ``k``, stride ``s`` (default:
the kernel), dilation ``d`` (``max_pool2d`` only, else 1), effective kernel
``K = d·(k−1)+1``, padding ``(pt, pb)`` and padded size ``P = H + pt + pb``:
window ``i`` covers padded rows ``i·s + j·d`` for ``j < k``, i.e. input rows
``i·s − pt + j·d``.

* Padding forms. ``[top, bottom, left, right]`` or an int: explicit.
  ``valid``: ``pt = pb = 0``. ``same``: TensorFlow's rule
  (``tensorflow/core/framework/kernel_shape_util.cc``,
  ``GetWindowedOutputSizeVerbose``): ``H_out = ceil(H/s)``,
  ``pad_needed = max(0, (H_out − 1)·s + K − H)``, ``pt = pad_needed // 2``
  (the odd pixel goes to the bottom/right). MindSpore's ``pad_mode='same'``
  states the same rule. PyTorch has no ``'same'`` for pooling. ``same_lower``:
  the same total, the odd pixel at the top/left (``pt = pad_needed −
  pad_needed // 2``), as ONNX ``AveragePool``/``MaxPool`` ``auto_pad='SAME_LOWER'``
  (``onnx/defs/nn/defs.cc``, ``convPoolShapeInference``: ``half_pad_big`` first
  for SAME_LOWER); ONNX ``SAME_UPPER`` is canonical ``same``.
* Window count, PyTorch's rule (``aten/src/ATen/native/Pool.h``,
  ``pooling_output_shape_pad_lr``): ``H_out = floor((P − K)/s) + 1``, every
  window inside the padded input. ``ceil_mode`` uses
  ``floor((P − K + s − 1)/s) + 1``, which adds one window when the others
  leave the end of the padded input uncovered, and drops that window if it
  would start at or past ``H + pt`` ("ensure that the last pooling starts
  inside the image"): a window may run past the bottom/right padding, never
  start in it. PyTorch applies the drop to whatever window is last, which
  differs from dropping only the added one (the canonical rule, so that
  ``ceil_mode`` never gives fewer windows than floor mode) only when the
  bottom padding is ≥ K, a call PyTorch rejects (``pad ≤ k/2``). Floor
  division rounds towards −∞ (``div_rtn``), so with ``ceil_mode`` a window up
  to ``s − 1`` rows larger than the padded input still gives one output
  (PyTorch and MindSpore return it; the canonical semantics follows).
  ``same`` pads so that windows fit exactly, hence ``ceil_mode`` never changes
  a ``same`` call; ``valid`` with ``ceil_mode`` is padding 0 with
  ``ceil_mode``.
* Rejected (``InvalidCall``): ``H_out < 1`` on an axis (a window larger than
  the padded input in floor mode, or by ``s`` or more rows in ceil mode).
  TensorFlow computes VALID sizes with C++ truncating division
  (``(H − K + s) / s``), so a window up to ``s − 1`` rows larger than the input
  gives an *empty* output there instead of an error: a divergence, not a rule.
* Framework restrictions that are NOT canonical rules (adapters report them as
  ``unsupported``, or pass the call and let the framework reject it):
  PyTorch's ``pad ≤ k/2`` (torch 2.13: "pad should be smaller than or equal
  to half of kernel size"; current sources check the effective kernel,
  ``pooling_output_shape`` and ``pool2d_shape_check``) and symmetric padding; MindSpore's symmetric ``padding`` per axis
  (``pad_mode='pad'``), ``pt + pb ≤ k`` for ``AvgPool3D`` and ``pad ≤ k/2`` for
  ``MaxPool3DWithArgmax``; TensorFlow's ``padding < window size`` for explicit
  max pooling (``tf.nn.avg_pool2d`` has no explicit padding at all). A window
  holding padding only is therefore canonical: its max is −∞ (PyTorch and
  MindSpore agree, reached with dilation); its average is defined only when
  the padding is counted (``avg_pool2d`` rejects the rest).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.ops.fields import Padding, Pair, input_dims, padding_form, pair, split_total
from harness.ops.spec import InvalidCall

class PoolParams(BaseModel):
    """The case fields every pooling operator has; ``stride`` defaults to the kernel."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    input: list[int] = Field(min_length=4, max_length=4, description="N, C, H, W in `layout` order")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    kernel_size: Pair
    stride: Optional[Pair] = None
    padding: Padding = 0
    ceil_mode: bool = False

    @field_validator("input")
    @classmethod
    def _input(cls, v):
        return input_dims(v)

    @field_validator("kernel_size")
    @classmethod
    def _kernel(cls, v):
        return pair(v, 1)

    @field_validator("stride")
    @classmethod
    def _stride(cls, v):
        return None if v is None else pair(v, 1)

    @field_validator("padding")
    @classmethod
    def _padding(cls, v):
        return padding_form(v)

    @model_validator(mode="after")
    def _stride_defaults_to_kernel(self):
        # The canonical default is written into the parameters, so reports and
        # registry conditions always see the stride that was meant.
        if self.stride is None:
            self.stride = list(self.kernel_size)
        return self


@dataclass(frozen=True)
class Resolved:
    """A valid pooling call, every padding form resolved (per-axis values are (h, w))."""

    batch: int
    channels: int
    in_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]        # top, bottom, left, right
    ceil_mode: bool
    out_hw: tuple[int, int]
    layout: str
    count_include_pad: Optional[bool]      # avg_pool2d only; None for max_pool2d

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The output shape in the case's layout (channels are kept)."""
        n, c, (h, w) = self.batch, self.channels, self.out_hw
        return (n, h, w, c) if self.layout == "NHWC" else (n, c, h, w)

    @property
    def accumulation_length(self) -> int:
        """Elements one output reduces at most: kh·kw (an average sums at most this many)."""
        return self.kernel[0] * self.kernel[1]

    @property
    def count_rule(self) -> Optional[str]:
        """What an average divides by: the window's elements inside ``input`` or inside ``input+padding``."""
        if self.count_include_pad is None:
            return None
        return "input+padding" if self.count_include_pad else "input"

    def as_dict(self) -> dict:
        return {**asdict(self), "count_rule": self.count_rule}


def nchw(params) -> tuple[int, int, int, int]:
    n, a, b, c = params["input"] if isinstance(params, dict) else params.input
    layout = params.get("layout", "NCHW") if isinstance(params, dict) else params.layout
    return (n, c, a, b) if layout == "NHWC" else (n, a, b, c)


def input_shapes(params) -> dict[str, tuple[int, ...]]:
    """The one operand, ``x``, in canonical NCHW."""
    return {"x": nchw(params)}


def axis_pads(size: int, eff: int, stride: int, form: str, explicit: tuple[int, int]) -> tuple[int, int]:
    """(pad_before, pad_after) of one axis for a padding form (Note [Pooling windows])."""
    if form == "valid":
        return 0, 0
    if form in ("same", "same_lower"):
        return split_total(max(0, (-(-size // stride) - 1) * stride + eff - size), form)
    return explicit


def axis_out(size: int, eff: int, stride: int, lo: int, hi: int, ceil_mode: bool) -> int:
    """Number of windows on one axis (Note [Pooling windows]); ≤ 0 when none fits (no check)."""
    floor_out = (size + lo + hi - eff) // stride + 1
    if not ceil_mode:
        return floor_out
    ceil_out = (size + lo + hi - eff + stride - 1) // stride + 1
    # ceil_mode adds at most one window, and only one that starts inside the input or its top/left padding.
    return ceil_out if ceil_out > floor_out and floor_out * stride < size + lo else floor_out


def empty_windows(size: int, k: int, stride: int, dilation: int, lo: int, out: int) -> np.ndarray:
    """Per window of one axis: True where none of its ``k`` taps lands inside the input."""
    start = np.arange(max(out, 0), dtype=np.int64) * stride - lo        # first tap, input coordinates
    first = np.maximum(0, -(start // dilation))                            # first tap index with row ≥ 0
    return ~((first < k) & (start + first * dilation < size))


def _form(params: dict) -> tuple[str, tuple[tuple[int, int], tuple[int, int]]]:
    padding = params["padding"]
    if isinstance(padding, str):
        return padding, ((0, 0), (0, 0))
    t, b, l, r = padding
    return "explicit", ((t, b), (l, r))


def geometry(params: dict, dilation=(1, 1)) -> dict:
    """Every per-axis quantity of a call (canonical ``params`` as a dict), without any check."""
    n, c, h, w = nchw(params)
    form, explicit = _form(params)
    axes = []
    for size, k, s, d, pads in zip((h, w), params["kernel_size"], params["stride"], dilation, explicit):
        eff = d * (k - 1) + 1
        lo, hi = axis_pads(size, eff, s, form, pads)
        out = axis_out(size, eff, s, lo, hi, params.get("ceil_mode", False))
        floor_out = axis_out(size, eff, s, lo, hi, False)
        last_end = (out - 1) * s + eff                                     # padded coordinates
        axes.append({"size": size, "k": k, "s": s, "d": d, "eff": eff, "lo": lo, "hi": hi, "out": out,
                     "floor_out": floor_out, "past_padding": out >= 1 and last_end > size + lo + hi,
                     "touches_padding": out >= 1 and (lo > 0 or (hi > 0 and last_end > size + lo)),
                     "empty": int(empty_windows(size, k, s, d, lo, out).sum())})
    return {"batch": n, "channels": c, "form": form, "axes": axes}


def resolve_windows(params: PoolParams, dilation=(1, 1), count_include_pad: Optional[bool] = None) -> Resolved:
    """Resolve the windows of a valid call; raise ``InvalidCall`` where no window fits."""
    g = geometry(params.model_dump(), dilation)
    for name, a in zip(("height", "width"), g["axes"]):
        if a["out"] < 1:
            field = "padding" if g["form"] == "explicit" and a["lo"] + a["hi"] else "kernel_size"
            raise InvalidCall(field, f"no window fits along {name}: a window of {a['eff']} rows on an input of "
                              f"{a['size']} padded by {a['lo']}+{a['hi']}, stride {a['s']}, gives {a['out']} "
                              f"outputs" + (" even with ceil_mode" if params.ceil_mode else ""))
    (ah, aw) = g["axes"]
    return Resolved(
        batch=g["batch"], channels=g["channels"], in_hw=(ah["size"], aw["size"]), kernel=(ah["k"], aw["k"]),
        stride=(ah["s"], aw["s"]), dilation=tuple(dilation), pads=(ah["lo"], ah["hi"], aw["lo"], aw["hi"]),
        ceil_mode=params.ceil_mode, out_hw=(ah["out"], aw["out"]), layout=params.layout,
        count_include_pad=count_include_pad,
    )


def footprint(params: PoolParams, dtype: str = "float64", outputs: int = 1, dilation=(1, 1)) -> tuple[int, int]:
    """Estimated peak data bytes of one case: ``(parent, worker)``, for the memory guard.

    Works on invalid calls too. Element counts: input ``X``, output ``Y`` and
    the oracle's first pass ``C`` (each window's rows reduced: ``N·C·H_out·W``).
    Parent, float64, the larger of two phases:

    * preparing: ``x``, ``|x|``, the oracle run twice (output and magnitude;
      each holds its first pass, its output and the layout copy):
      ``2·X + C + 3·Y``;
    * judging: ``x``, output and magnitude, each backend's answer (``outputs``
      of them, 4 bytes each for float16/float32 cases, else 8) and a failure's
      reproducer (about ``2·X + 7·Y``, as for conv2d_transpose).

    Worker: the operand received (float64) and a framework copy, and the
    oracle's definition run in the compute precision ``s`` (4 or 8 bytes):
    ``16·X + s·(X + C + 3·Y)``.
    """
    g = geometry(params.model_dump(), dilation)
    n, c = g["batch"], g["channels"]
    x = n * c * g["axes"][0]["size"] * g["axes"][1]["size"]
    outs = [max(a["out"], 0) for a in g["axes"]]
    canvas, output = n * c * outs[0] * g["axes"][1]["size"], n * c * outs[0] * outs[1]
    answer = 4 if dtype in ("float16", "float32") else 8
    preparing = 8 * (2 * x + canvas + 3 * output)
    judging = 8 * (x + 2 * output) + answer * outputs * output + 8 * (2 * x + 7 * output)
    compute = 8 if dtype == "float64" else 4
    return max(preparing, judging), 16 * x + compute * (x + canvas + 3 * output)


#: Values the window semantics derives from a call, for registry conditions (harness/divergences.py).
#: Per-axis values are ``[height, width]``; each operator adds its own.
DERIVED = {
    "valid_call": "the canonical semantics accepts the call",
    "padding_form": "'same', 'same_lower', 'valid' or 'explicit'",
    "batch": "N, the number of images",
    "in_size": "[H, W] of the input",
    "effective_kernel": "[K_h, K_w], K = dilation·(kernel − 1) + 1",
    "stride_is_kernel": "stride equals kernel_size on both axes (the default)",
    "overlapping": "stride < kernel on some axis: windows overlap",
    "kernel_below_stride": "K < stride on some axis: windows skip rows",
    "pads": "[top, bottom, left, right], every padding form resolved",
    "any_pad": "some pad is > 0",
    "asymmetric_pad": "top ≠ bottom or left ≠ right (PyTorch and MindSpore pad symmetrically)",
    "pad_over_half_kernel": "some pad > kernel // 2 (PyTorch 2.13 and MindSpore's MaxPool reject it)",
    "pad_over_half_effective_kernel": "some pad > K // 2 (newer PyTorch sources reject it)",
    "pad_not_below_kernel": "some pad ≥ K (TensorFlow's explicit max pooling rejects it)",
    "pad_sum_over_kernel": "top + bottom > kernel or left + right > kernel (MindSpore's AvgPool3D rejects it)",
    "out_size": "[H_out, W_out] (≤ 0 when no window fits)",
    "same_pad_negative": "(ceil(H/s) − 1)·s + K − H < 0 on some axis: the 'same' padding before it is "
                         "clamped at 0 is negative (K < s and the windows skip the last rows)",
    "same_begin_pad_negative": "the unclamped 'same'/'same_lower' total split as C++ splits it (begin = "
                               "total / 2 truncated, same_lower: total − that) gives a negative top/left pad on "
                               "some axis (ONNX Runtime's AveragePool reads from the wrong rows then)",
    "same_windows_undilated_differ": "the windows of 'same'/'same_lower' with pads computed for the undilated "
                                     "kernel (the total not clamped at 0, split with C++ division) differ from the "
                                     "canonical windows (the first one's start, or their count) on some axis",
    "floor_out_size": "[H_out, W_out] without ceil_mode",
    "ceil_mode_adds_window": "ceil_mode gives more windows than floor mode on some axis",
    "window_past_padding": "the last window runs past the bottom/right padding on some axis (ceil_mode)",
    "window_touches_padding": "some window covers a padding position (count_include_pad matters)",
    "window_in_padding_only": "some window holds no input element",
    "floor_window_starts_in_padding": "a window of floor mode starts in the bottom/right padding on some axis: "
                                      "(floor_out − 1)·s ≥ size + pad_lo (PyTorch's ceil_mode drop test)",
    "window_overhang": "[K_h − P_h, K_w − P_w]: rows a window exceeds the padded input by (≤ 0: it fits)",
    "overhang_below_stride": "on some axis a window exceeds the padded input by more than 0, fewer than s rows",
    "overhang_at_least_stride": "[h, w]: on that axis a window exceeds the padded input by s rows or more",
    "out_size_truncated": "[h, w]: trunc((P − K + s) / s), the floor-mode size with C++ division truncating "
                          "toward zero (TensorFlow's GetWindowedOutputSize: 0, not negative, for an overhang "
                          "of 1..2s − 1 rows)",
    "ceil_out_size_truncated": "[h, w]: trunc((P − K + s − 1) / s) + 1, the ceil-mode size with truncating "
                               "division (MindSpore's AvgPool3D: 1 for an overhang of s..2s − 2 rows)",
}


def derived(params: dict, dilation=(1, 1)) -> dict:
    """The values of ``DERIVED`` for canonical ``params`` (valid or not), ``valid_call`` excluded."""
    g = geometry(params, dilation)
    a = g["axes"]
    pads = [a[0]["lo"], a[0]["hi"], a[1]["lo"], a[1]["hi"]]
    effs = [x["eff"] for x in a]
    raw = [(-(-x["size"] // x["s"]) - 1) * x["s"] + x["eff"] - x["size"] for x in a]   # 'same' total, unclamped
    return {
        "padding_form": g["form"], "batch": g["batch"], "in_size": [x["size"] for x in a],
        "effective_kernel": effs, "stride_is_kernel": list(params["stride"]) == list(params["kernel_size"]),
        "overlapping": any(x["s"] < x["k"] for x in a), "kernel_below_stride": any(x["eff"] < x["s"] for x in a),
        "pads": pads, "any_pad": any(pads), "asymmetric_pad": pads[0] != pads[1] or pads[2] != pads[3],
        "pad_over_half_kernel": any(p > a[i // 2]["k"] // 2 for i, p in enumerate(pads)),
        "pad_over_half_effective_kernel": any(p > effs[i // 2] // 2 for i, p in enumerate(pads)),
        "pad_not_below_kernel": any(p >= effs[i // 2] for i, p in enumerate(pads)),
        "pad_sum_over_kernel": any(x["lo"] + x["hi"] > x["k"] for x in a),
        "out_size": [x["out"] for x in a], "floor_out_size": [x["floor_out"] for x in a],
        "same_pad_negative": any(t < 0 for t in raw),
        "same_begin_pad_negative": g["form"] in ("same", "same_lower") and any(
            _cxx_split(t, g["form"])[0] < 0 for t in raw),
        "same_windows_undilated_differ": g["form"] in ("same", "same_lower") and any(
            _undilated_same_windows(x, g["form"]) != (x["lo"], x["out"]) for x in a),
        "ceil_mode_adds_window": any(x["out"] > x["floor_out"] for x in a),
        "window_past_padding": any(x["past_padding"] for x in a),
        "window_touches_padding": any(x["touches_padding"] for x in a),
        "window_in_padding_only": any(x["empty"] for x in a),
        "floor_window_starts_in_padding": any(x["floor_out"] > 0 and (x["floor_out"] - 1) * x["s"]
                                              >= x["size"] + x["lo"] for x in a),
        "window_overhang": [x["eff"] - (x["size"] + x["lo"] + x["hi"]) for x in a],
        "overhang_below_stride": any(0 < x["eff"] - (x["size"] + x["lo"] + x["hi"]) < x["s"] for x in a),
        "overhang_at_least_stride": [x["eff"] - (x["size"] + x["lo"] + x["hi"]) >= x["s"] for x in a],
        "out_size_truncated": [_trunc_div(x["size"] + x["lo"] + x["hi"] - x["eff"] + x["s"], x["s"]) for x in a],
        "ceil_out_size_truncated": [_trunc_div(x["size"] + x["lo"] + x["hi"] - x["eff"] + x["s"] - 1, x["s"]) + 1
                                    for x in a],
    }


def _undilated_same_windows(axis: dict, form: str) -> tuple[int, int]:
    """(first window's start before the input, window count) of one axis when 'same' pads for the undilated
    kernel, the total not clamped at 0, split with C++ division (``same_windows_undilated_differ``)."""
    total = (-(-axis["size"] // axis["s"]) - 1) * axis["s"] + axis["k"] - axis["size"]
    begin, end = _cxx_split(total, form)
    return begin, (axis["size"] + begin + end - axis["eff"]) // axis["s"] + 1


def _cxx_split(total: int, form: str) -> tuple[int, int]:
    """A 'same'/'same_lower' total split with C++ division (truncating toward zero), not clamped at 0."""
    small = _trunc_div(total, 2)
    return (total - small, small) if form == "same_lower" else (small, total - small)


def _trunc_div(a: int, b: int) -> int:
    """``a / b`` rounded toward zero, as C++ integer division (``b > 0``)."""
    return a // b if a >= 0 else -(-a // b)
