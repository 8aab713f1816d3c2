"""What the report pages say about a conv2d_transpose call (``harness/report/analysis.py`` renders it).

``features``: derived labels that explain failure groups (``padding
asymmetric``, ``kernel<stride``: the effective kernel ``d·(k−1)+1`` below the
stride, where MindSpore's 'valid' diverges); ``CAPABILITIES``: the capability
matrix's dimensions (native, emulated or unsupported per backend) and which of them
an adapter's emulation note is about; and the output axes reduced for the ``|y − y_ref|`` heatmap (batch and channels).
"""

from __future__ import annotations

import re
from typing import Optional

from harness.ops.spec import ReportSpec


def _pairs(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def features(p: dict) -> set[str]:
    """Derived facts about a call's parameters (exact values are added by the core)."""
    out = set()
    pad = p.get("padding")
    if isinstance(pad, (list, tuple)):
        out.add("padding explicit")
        if any(pad):
            out.add("padding>0")
        if len(pad) == 4 and (pad[0] != pad[1] or pad[2] != pad[3]):
            out.add("padding asymmetric")
    if "groups" in p and p["groups"] > 1:
        out.add("groups>1")
    if "dilation" in p and max(_pairs(p["dilation"])) > 1:
        out.add("dilation>1")
    if "stride" in p and max(_pairs(p["stride"])) > 1:
        out.add("stride>1")
    if "output_padding" in p and any(_pairs(p["output_padding"])):
        out.add("output_padding>0")
    if p.get("output_shape") is not None:
        out.add("output_shape given")
    if {"kernel_size", "stride"} <= set(p):
        k, s = _pairs(p["kernel_size"]), _pairs(p["stride"])
        d = _pairs(p.get("dilation", 1))
        d = d * 2 if len(d) == 1 else d
        k = k * 2 if len(k) == 1 else k
        s = s * 2 if len(s) == 1 else s
        eff = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
        if any(e < ss for e, ss in zip(eff, s)):
            out.add("kernel<stride")
        elif any(e == ss for e, ss in zip(eff, s)):
            out.add("kernel=stride")
    return out


def _padding_form(p: dict) -> Optional[str]:
    pad = p.get("padding")
    if isinstance(pad, str):
        return pad
    if isinstance(pad, (list, tuple)):
        return "explicit, asymmetric" if len(pad) == 4 and (pad[0] != pad[1] or pad[2] != pad[3]) else "explicit"
    return None


CAPABILITIES = (
    ("dtype", lambda r, p: r.get("dtype")),
    ("layout", lambda r, p: p.get("layout")),
    ("groups", lambda r, p: None if "groups" not in p else ("1" if p["groups"] == 1 else ">1")),
    ("dilation", lambda r, p: None if "dilation" not in p else ("1" if max(_pairs(p["dilation"])) == 1 else ">1")),
    ("padding", lambda r, p: _padding_form(p)),
    ("output_padding", lambda r, p: None if "output_padding" not in p
     else (">0" if any(_pairs(p["output_padding"])) else "0")),
    ("output_shape", lambda r, p: None if "output_shape" not in p
     else ("given" if p["output_shape"] is not None else "none")),
    ("bias", lambda r, p: None if "bias" not in p else str(bool(p["bias"])).lower()),
)


def emulated(notes: list[str]) -> set[str]:
    """Which capability dimensions an adapter's emulation notes are about (by what each note opens with).

    Adapters write notes such as "NHWC emulated: ...", "padding 'same' / output_shape ... expressed as
    ...", "asymmetric crops ...", "output_padding [1, 1] requested through output_shape ...", "bias added
    with tf.nn.bias_add", "NumPy has no bfloat16: ...". A note that says something is merely "implied"
    is not an emulation.
    """
    found = set()
    for note in notes or []:
        head = str(note).strip()
        if "implied" in head:
            continue
        if head.startswith(("NHWC", "NCHW")):
            found.add("layout")
        elif head.startswith(("padding", "asymmetric crops")):
            found.add("padding")
            if re.search(r"output_shape \[", head):
                found.add("output_shape")
        elif head.startswith("output_shape"):
            found.add("output_shape")
        elif head.startswith("output_padding"):
            found.add("output_padding")
        elif head.startswith("bias"):
            found.add("bias")
        elif re.search(r"\b(b?float(16|32|64))\b", head[:60]):
            found.add("dtype")
        else:
            found |= {d for d in ("dilation", "groups") if d in head[:40]}
    return found


def plane_axes(p: dict) -> tuple[int, ...]:
    """Batch and channel axes of the output, reduced (max) for the heatmap over the output plane."""
    return (0, 3) if p.get("layout") == "NHWC" else (0, 1)


REPORT = ReportSpec(features=features, capabilities=CAPABILITIES, emulated=emulated, plane_axes=plane_axes)
