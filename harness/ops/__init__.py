"""Operators: canonical semantics, one module per operator.

An operator module provides ``NAME``, ``Params`` (a pydantic model of its case
fields), ``InvalidCall``, ``resolve(params) -> Resolved`` and
``input_shapes(params)`` and ``footprint(params, dtype, outputs)`` (the data bytes of the parent and of a
worker, for the memory guard), and ``DERIVED`` (name -> meaning) with ``derived(params, data) -> dict``:
the values its semantics derives from a call, which known-divergence entries may test
(harness/divergences.py). Adding an operator means adding such a module here,
an oracle in ``harness.oracle`` and one method per backend adapter.
"""

from __future__ import annotations

from types import ModuleType

from harness.ops import conv2d_transpose

OPS: dict[str, ModuleType] = {conv2d_transpose.NAME: conv2d_transpose}


def get(name: str) -> ModuleType:
    return OPS[name]
