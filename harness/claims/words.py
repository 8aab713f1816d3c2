"""What each side of a claim means, in words, read from its resolved canonical meaning.

Every convolution and pooling operator resolves its padding forms to per-side
numbers (``crops`` for the transposed convolution, ``pads`` for the others)
and an output size, so two sides of a claim can be set side by side:
"tf.keras crops (0, 1) rows and (0, 1) columns, output 30x30; torch.nn crops
(1, 0) rows and (1, 0) columns, output 30x30". ``contrast`` names only what
differs; ``meaning`` says everything.
"""

from __future__ import annotations

from typing import Any, Optional

#: Resolved fields shown, with how to say them; the first present of crops/pads is the padding.
_ORDER = ("crops", "pads", "output_padding", "kernel", "stride", "dilation", "groups", "count_rule",
          "ceil_mode", "out_hw")


def _axes(value, verb: str) -> str:
    top, bottom, left, right = value
    return f"{verb} ({top}, {bottom}) rows and ({left}, {right}) columns"


def phrase(key: str, value: Any) -> Optional[str]:
    """One resolved field in words (None for a field not worth saying)."""
    if key == "crops":
        return _axes(value, "crops")
    if key == "pads":
        return _axes(value, "pads")
    if key == "output_padding":   # only where ``kept`` did not fold it into the crops
        return f"keeps ({value[0]}, {value[1]}) extra rows/columns (output_padding)" if value and any(value) else None
    if key == "out_hw":
        return f"output {value[0]}x{value[1]}"
    if key in ("kernel", "stride", "dilation"):
        return f"{key} {value[0]}x{value[1]}"
    if key == "groups":
        return f"groups {value}"
    if key == "count_rule":
        return f"averages over the window inside {value}" if value else None
    if key == "ceil_mode":
        return "ceil_mode" if value else None
    return None


def kept(resolved: dict) -> dict:
    """A transposed convolution's crops as the rows/columns it really drops from the full output: the
    output is ``full[pt : F − (pb − op)]``, so output_padding only moves the bottom/right crop (a negative
    crop keeps zero rows past the full output). ``padding=1, output_padding=1`` crops (1, 0)."""
    if "crops" not in resolved or "output_padding" not in resolved:
        return resolved
    (top, bottom, left, right), (oh, ow) = resolved["crops"], resolved["output_padding"]
    return {**resolved, "crops": (top, bottom - oh, left, right - ow), "output_padding": None}


def meaning(resolved: Optional[dict], invalid_reason: Optional[str] = None) -> str:
    """A side's canonical meaning in words: its padding (crops as kept) and output size."""
    if resolved is None:
        return f"a call the canonical semantics rejects ({invalid_reason})" if invalid_reason else "no meaning"
    resolved = kept(resolved)
    parts = [phrase(key, resolved[key]) for key in ("crops", "pads", "output_padding", "out_hw") if key in resolved]
    return ", ".join(p for p in parts if p)


def contrast(sides: dict[str, Optional[dict]]) -> str:
    """The fields where the sides' meanings differ, each side's value said: ``tf.keras crops (0, 1) rows and
    (0, 1) columns, torch.nn crops (1, 0) rows and (1, 0) columns``; empty when they mean the same call."""
    valid = {name: kept(r) for name, r in sides.items() if r is not None}
    if len(valid) < 2:
        return ""
    out = []
    for key in _ORDER:
        values = {name: _norm(r.get(key)) for name, r in valid.items()}
        if len(set(map(repr, values.values()))) > 1:
            said = [f"{name} {phrase(key, value) or _plain(key, value)}" for name, value in values.items()]
            out.append(", ".join(said))
    return "; ".join(out)


def _norm(value):
    return list(value) if isinstance(value, tuple) else value


def _plain(key: str, value) -> str:
    empty = not value or (isinstance(value, (list, tuple)) and not any(value))
    return f"no {key.replace('_', ' ')}" if empty else f"{key} {value}"
