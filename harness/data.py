"""Input data: the fills a case can ask for, and rounding to the case dtype.

Every backend receives the *same* canonical arrays (the layouts each operator
states in its ``operands``), already rounded to the case dtype and held in
float64, so that input quantisation is identical everywhere and is never
counted as a backend's error. Adapters convert layout and dtype; the values
are exactly representable in the target dtype, so that conversion is exact.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from harness.ops.spec import Operand

FILLS = ("normal", "uniform", "ones", "arange", "impulse")
DTYPES = ("float16", "bfloat16", "float32", "float64")

#: Unit roundoff (half an ulp of 1.0) of each dtype.
UNIT_ROUNDOFF = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24, "float64": 2.0 ** -53}


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round ``values`` to ``dtype`` (round-to-nearest-even) and return float64."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "float64":
        return values.copy()
    if dtype in ("float16", "float32"):
        return values.astype(dtype).astype(np.float64)
    # bfloat16 is the top half of a float32; round the dropped half to nearest even.
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    finite = np.isfinite(values)
    bits = np.where(finite, bits + 0x7FFF + ((bits >> 16) & 1), bits)
    return (bits & 0xFFFF0000).astype(np.uint32).view(np.float32).astype(np.float64)


def _fill(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    size = int(np.prod(shape))
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if kind == "ones":
        return np.ones(shape)
    if kind == "arange":
        # Multiples of 1/8 in [-1, 1]: exact in every dtype, and position-dependent,
        # so a shifted or transposed result cannot match by accident.
        return ((np.arange(size) % 17 - 8) / 8.0).reshape(shape)
    if kind == "impulse":
        # One 1 at the centre of every trailing 2-D plane: offset bugs move it.
        out = np.zeros(shape)
        if size:
            out[(...,) + tuple(s // 2 for s in shape[-2:])] = 1.0
        return out
    raise ValueError(f"unknown fill {kind!r}; choose one of {', '.join(FILLS)}")


def make_arrays(shapes: dict[str, tuple[int, ...]], data: dict, dtype: str,
                operands: Sequence[Operand] = ()) -> dict[str, np.ndarray]:
    """Create the canonical operands of one case, rounded to ``dtype``.

    Each operand has its own stream derived from (seed, operand name), so adding
    a bias does not change the other operands. ``operands`` (the operator's
    ``Operand`` declarations) give each one's default fill; a bias (``role``
    ``"bias"``) without a fill is random and never zero, so a dropped bias is
    always visible.
    """
    seed = int(data.get("seed", 0))
    declared = {operand.name: operand for operand in operands}
    arrays = {}
    for name, shape in shapes.items():
        digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        operand = declared.get(name)
        fill = data.get(name) or (operand.fill if operand else None)
        if operand is not None and operand.role == "bias" and not fill:
            values = rng.uniform(0.25, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
        else:
            values = _fill(fill or "normal", shape, rng)
        arrays[name] = round_to_dtype(values, dtype)
    return arrays
