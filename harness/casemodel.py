"""The case model: the fields every case has, an operator's ``data:`` model, and ``Case``.

``harness.cases`` builds ``Case`` objects from case files (and re-exports
everything here); a ``Case`` also answers what a run plans with (mode,
backends, cost, gradients, content hash) the way ``harness.suite.CaseRef``
does, so planning code takes either.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from harness import ops

Fill = Literal["normal", "uniform", "ones", "arange", "impulse"]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.,=:+\-\[\]]*$"
ID_MAX = 200


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    shape: Optional[list[int]] = None
    error: bool = False


class Tolerance(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    rtol: float = Field(default=0.0, ge=0)
    atol: float = Field(default=0.0, ge=0)


class CaseFields(BaseModel):
    """Fields every case has, whatever its operator."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)
    source: Optional[str] = None
    description: Optional[str] = None
    dtype: Literal["float16", "bfloat16", "float32", "float64"] = "float32"
    data: Any = None                  # the operator's data model (``fields_model``): a fill per operand, a seed
    expect: Optional[Expect] = None
    tolerance: Optional[Tolerance] = None
    backends: Optional[list[str]] = None
    #: forward: the output; backward: the gradients of every differentiable operand (Note [Gradients] in
    #: ``harness/backends/autodiff.py``); both. ``conform run --mode`` overrides it for every case.
    mode: Literal["forward", "backward", "both"] = "forward"


COMMON_KEYS = set(CaseFields.model_fields) | {"matrix"}


@functools.cache
def data_model(op_name: str) -> type[BaseModel]:
    """The ``data:`` model of an operator's cases: a fill per operand (a bias: none by default), a seed."""
    spec = ops.get(op_name)
    fills = {o.name: (Optional[Fill], None) if o.fill is None else (Fill, o.fill) for o in spec.operands}
    return create_model(f"Data_{op_name}", __config__=ConfigDict(extra="forbid", strict=True), **fills,
                        seed=(int, Field(default=0, ge=0, le=2**63 - 1)))


@functools.cache
def fields_model(op_name: str) -> type[CaseFields]:
    """``CaseFields`` with the operator's ``data:`` model."""
    data = data_model(op_name)
    return create_model(f"CaseFields_{op_name}", __base__=CaseFields, data=(data, data()))


@dataclass
class Case:
    """One expanded, validated case: what the runner runs."""

    id: str
    op: str
    file: str
    line: int
    common: CaseFields
    params: BaseModel                 # the operator's Params
    raw_params: dict[str, Any]        # the operator fields as written (after defaults/matrix)
    resolved: Any = None              # the operator's Resolved (OpSpec.resolve), or None if the call is invalid
    invalid_reason: Optional[str] = None
    lines: dict[tuple, int] = field(default_factory=dict)   # field path within the case -> line

    @property
    def dtype(self) -> str:
        return self.common.dtype

    @property
    def expects_error(self) -> bool:
        return bool(self.common.expect and self.common.expect.error)

    @property
    def expected_shape(self) -> Optional[tuple[int, ...]]:
        if self.common.expect and self.common.expect.shape is not None:
            return tuple(self.common.expect.shape)
        return self.resolved.output_shape if self.resolved else None

    def canonical_params(self) -> dict[str, Any]:
        """The operator parameters in canonical form (pairs expanded, padding listed)."""
        return self.params.model_dump()

    # What a run plans with, shared with ``harness.suite.CaseRef`` (Note [Case index] there), so the planning
    # code (sharding, -k, --resume, the suite record) takes either.
    @property
    def mode(self) -> str:
        return self.common.mode

    @property
    def backends(self) -> Optional[list[str]]:
        return self.common.backends

    @property
    def description(self) -> Optional[str]:
        return self.common.description

    @property
    def source(self) -> Optional[str]:
        return self.common.source

    @property
    def flops(self) -> float:
        """One call's floating-point operations (``OpSpec.flops``; 0 for a call the semantics rejects)."""
        return ops.get(self.op).flops(self.resolved) if self.resolved is not None else 0.0

    @property
    def gradients(self) -> tuple[str, ...]:
        """The operands whose gradients a backward run judges (``harness.backward.gradient_operands``): none
        for a call the semantics rejects (its backward pass is the rejection) or an operator without one."""
        op = ops.get(self.op)
        if op.gradient is None or self.resolved is None or self.expects_error or self.expected_shape is None:
            return ()
        present = op.shapes(self.params)
        return tuple(name for name in op.gradient.operands if name in present)

    @property
    def content_hash(self) -> str:
        """A short sha256 of everything that decides the case's results (``harness.journal.case_hash``)."""
        common = self.common.model_dump(include={"dtype", "data", "expect", "tolerance"})
        backends = sorted(self.common.backends) if self.common.backends is not None else None
        content = {"op": self.op, "params": self.canonical_params(), "backends": backends, **common}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
