"""How reporters name and count gradient results (issue 15, DESIGN.md §7).

A result is identified by (case, backend, gradient): ``gradient`` is null for
the forward output and ``"x"``, ``"w"`` or ``"b"`` for the vector–Jacobian
product with respect to the input, weight or bias. Records written before
backward mode have no ``gradient`` key; every function here reads a missing
key as null, so old reports keep their keys, names and counts.

This module owns the spellings every reporter shares: the key
(``result_key``), the label people read (``label``: ``case · ∂x``), the
junit testcase name (``junit_name``: ``case.grad_x``), the reproducer
sub-folder (``folder_name``: ``grad_x``) and the forward/gradient split of the
verdict counts (``split_counts``).
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

#: Display order of gradient operands: input, weight, bias.
ORDER = ("x", "w", "b")


def gradient_of(record: dict) -> Optional[str]:
    """The record's gradient operand, or None for a forward result (and for records without the field)."""
    value = record.get("gradient")
    return str(value) if value not in (None, "") else None


def result_key(record: dict) -> tuple:
    """The identity of a result across runs: (case, backend, gradient)."""
    return (record["case"], record["backend"], gradient_of(record))


def rank(gradient: Optional[str]) -> tuple:
    """Sort key: forward first, then x, w, b, then any other operand by name."""
    if gradient is None:
        return (0, 0, "")
    return (1, ORDER.index(gradient), "") if gradient in ORDER else (2, 0, gradient)


def suffix(gradient: Optional[str]) -> str:
    """`` · ∂x`` for a gradient, empty for a forward result."""
    return f" · ∂{gradient}" if gradient is not None else ""


def label(record: dict) -> str:
    """What people read for a result's case: ``case-id`` or ``case-id · ∂x``."""
    return str(record["case"]) + suffix(gradient_of(record))


def junit_name(record: dict) -> str:
    """A junit testcase name, stable across runs: the case id, plus ``.grad_x`` for the gradient w.r.t. x."""
    gradient = gradient_of(record)
    return str(record["case"]) + (f".grad_{gradient}" if gradient is not None else "")


def folder_name(gradient: str) -> str:
    """The reproducer sub-folder of a gradient result, inside its forward result's folder."""
    return f"grad_{gradient}"


def has_gradients(results: list[dict]) -> bool:
    return any(gradient_of(r) is not None for r in results)


def split_counts(results: list[dict]) -> dict[str, dict[str, Counter]]:
    """Per backend (in order of appearance): verdict counts of its ``forward`` and its ``gradient`` results."""
    out: dict[str, dict[str, Counter]] = {}
    for r in results:
        side = "forward" if gradient_of(r) is None else "gradient"
        out.setdefault(r["backend"], {"forward": Counter(), "gradient": Counter()})[side][r["verdict"]] += 1
    return out


def count_text(counts: Counter, order: list[str]) -> str:
    """``120 pass, 3 value_mismatch`` in verdict order (verdicts outside ``order`` last, by name)."""
    names = [v for v in order if counts.get(v)] + sorted(v for v in counts if v not in order and counts[v])
    return ", ".join(f"{counts[v]} {v}" for v in names) or "none"
