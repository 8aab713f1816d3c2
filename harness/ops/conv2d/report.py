"""What the report pages say about a conv2d call (``harness/report/analysis.py`` renders it).

``features``: derived labels that explain failure groups (``padding
asymmetric``, ``kernel<stride``); ``CAPABILITIES``: the capability matrix's
dimensions and which of them an adapter's emulation note is about; the output
axes reduced for the ``|y − y_ref|`` heatmap (batch and channels).
"""

from __future__ import annotations

import re
from typing import Optional

from harness.ops.spec import ReportSpec


def _two(value) -> list:
    return list(value) * (2 if len(value) == 1 else 1) if isinstance(value, (list, tuple)) else [value, value]


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
    if p.get("groups", 1) > 1:
        out.add("groups>1")
    if max(_two(p.get("dilation", 1))) > 1:
        out.add("dilation>1")
    if max(_two(p.get("stride", 1))) > 1:
        out.add("stride>1")
    if "kernel_size" in p:
        eff = [d * (k - 1) + 1 for k, d in zip(_two(p["kernel_size"]), _two(p.get("dilation", 1)))]
        if any(e < s for e, s in zip(eff, _two(p.get("stride", 1)))):
            out.add("kernel<stride")
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
    ("dilation", lambda r, p: None if "dilation" not in p else ("1" if max(_two(p["dilation"])) == 1 else ">1")),
    ("padding", lambda r, p: _padding_form(p)),
    ("bias", lambda r, p: None if "bias" not in p else str(bool(p["bias"])).lower()),
)


def emulated(notes: list[str]) -> set[str]:
    """Which capability dimensions an adapter's emulation notes are about (by what each note opens with)."""
    found = set()
    for note in notes or []:
        head = str(note).strip()
        if "implied" in head:
            continue
        if head.startswith(("NHWC", "NCHW")):
            found.add("layout")
        elif head.startswith(("padding", "asymmetric")):
            found.add("padding")
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
