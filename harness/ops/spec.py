"""The operator interface: ``OpSpec`` and the small types it is made of (Note [Operators] in ``__init__``).

Only types live here, no behaviour and no import from the rest of conform, so an
operator package can import this module without pulling in the core, and the
core can import every operator without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

import numpy as np
from pydantic import BaseModel


class InvalidCall(ValueError):
    """A call an operator's canonical semantics rejects; ``field`` names the culprit (a case field)."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


class Resolved(Protocol):
    """What ``OpSpec.resolve`` returns for a valid call (a frozen dataclass per operator)."""

    @property
    def output_shape(self) -> tuple[int, ...]: ...      # in the case's layout

    def as_dict(self) -> dict: ...                      # sent to the adapters as ``Call.resolved``


@dataclass(frozen=True)
class Operand:
    """One array an operator takes.

    ``name`` is its key in ``Call.arrays``, in ``inputs.npz`` and in a case's
    ``data:`` (its fill); ``shape`` says the canonical layout in words. A
    ``role="bias"`` operand with no fill given is random and never zero (so a
    dropped bias always shows); any other operand defaults to ``fill``.
    """

    name: str
    shape: str
    role: str = "input"          # "input" | "weight" | "bias"
    fill: Optional[str] = "normal"


@dataclass(frozen=True)
class ErrorBound:
    """The parameters of one call's error bound (Note [Tolerance model] in ``harness/compare.py``).

    ``accumulation_length`` is ``K``, the most terms summed into one output
    element (0: nothing is summed); ``roundings`` is how many times the exact
    result may be rounded into the case dtype after the sum (2 for a sum plus
    a bias, or a sum divided by a count; 0 for an exact operation such as max).
    """

    accumulation_length: int
    roundings: int = 2


@dataclass(frozen=True)
class GradientSpec:
    """An operator's backward pass (Note [Gradients] in ``harness/backends/autodiff.py``).

    ``vjp(params, arrays, dy)``: the independent float64 vector–Jacobian products, operand -> gradient
    (canonical layouts; ``dy`` in the case layout); ``magnitude(params, arrays, dy)``: operand -> ``B``,
    the same sums over absolute values; ``error_bounds(params, arrays, dy)``: operand -> ``ErrorBound``.
    ``operands``: the differentiable operands (those the call has are asked for).
    """

    vjp: Callable[[dict, dict, np.ndarray], dict[str, np.ndarray]]
    magnitude: Callable[[dict, dict, np.ndarray], dict[str, np.ndarray]]
    error_bounds: Callable[[dict, dict, np.ndarray], dict[str, "ErrorBound"]]
    operands: tuple[str, ...]


@dataclass(frozen=True)
class ErrorInput:
    """A call the semantics must reject: case fields, and the field the rejection blames."""

    id: str
    fields: dict[str, Any]
    blames: str


@dataclass(frozen=True)
class Canonical:
    """One row of ``conform mapping``: a canonical parameter and when a case exercises it."""

    key: str
    label: str
    uses: Callable[[dict, str], bool]   # (canonical params, dtype) -> the case exercises this parameter
    #: Optional (canonical params) -> value label: the measured column then also gives each value's figures.
    breakdown: Optional[Callable[[dict], str]] = None


@dataclass(frozen=True)
class CoverageSpec:
    """Coverage dimensions (``conform coverage``) and the pairwise generator's input (``harness.pairwise``).

    ``required``: parameter -> the levels a suite must cover, in display order.
    ``classify(params, dtype, data)``: the levels a case covers, per parameter.
    ``concrete(row)``: a row of levels -> case fields (operator fields plus ``dtype`` and ``data``).
    ``key``: the factors that decide whether a row is valid (or runnable by a backend);
    ``capabilities``: backend -> predicate on the ``key`` levels it can run (measured, documented
    where defined). ``case_id(fields)`` names a generated case; ``yaml_fields`` are the operator
    fields written, in order; ``header`` heads the generated file (``{rows}``, ``{n}``, ``{full}``
    are filled in); ``path`` is where the file lives.
    """

    required: dict[str, list[str]]
    classify: Callable[[dict, str, Optional[dict]], dict[str, set[str]]]
    concrete: Callable[[dict[str, str]], dict]
    key: tuple[str, ...]
    case_id: Callable[[dict], str]
    yaml_fields: tuple[str, ...]
    header: str
    path: str
    default_row: dict[str, str] = field(default_factory=dict)
    capabilities: dict[str, Callable[[dict[str, str]], bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportSpec:
    """What the report pages say about a call of this operator (``harness/report/analysis.py``).

    ``features(params)``: derived labels that explain failures (``kernel<stride``);
    ``capabilities``: (dimension, value-of(record, params)) rows of the capability matrix;
    ``emulated(notes)``: the dimensions an adapter's emulation notes are about;
    ``plane_axes(params)``: the axes of the output reduced for the ``|y − y_ref|`` heatmap.
    """

    features: Callable[[dict], set[str]]
    capabilities: tuple[tuple[str, Callable[[dict, dict], Optional[str]]], ...]
    emulated: Callable[[list[str]], set[str]]
    plane_axes: Callable[[dict], tuple[int, ...]]


@dataclass(frozen=True)
class OpSpec:
    """Everything the core knows about one operator (Note [Operators] in ``harness/ops/__init__.py``)."""

    name: str
    #: pydantic model of the case's operator fields; ``model_dump()`` is the canonical form.
    Params: type[BaseModel]
    #: ``Params -> Resolved``; raises ``InvalidCall`` for a call the semantics rejects.
    resolve: Callable[[BaseModel], Resolved]
    operands: tuple[Operand, ...]
    #: ``Params -> {operand: canonical shape}`` of the operands the call has (an absent bias is left out).
    shapes: Callable[[BaseModel], dict[str, tuple[int, ...]]]
    #: ``(params, arrays, dtype=np.float64) -> output``: the independent reference (case layout).
    oracle: Callable[..., np.ndarray]
    #: ``(params, arrays) -> B``: the float64 magnitude the error bound scales with.
    magnitude: Callable[[dict, dict], np.ndarray]
    #: ``Resolved -> ErrorBound``.
    error_bound: Callable[[Any], ErrorBound]
    #: ``(Params, dtype, outputs) -> (parent bytes, worker bytes)`` for the memory guard (valid or not).
    footprint: Callable[[BaseModel, str, int], tuple[int, int]]
    #: name -> meaning of the values ``derived(params, data)`` gives, for registry conditions.
    DERIVED: dict[str, str]
    derived: Callable[[dict, dict], dict]
    #: ``Resolved -> floating-point operations of one call`` (``conform bench``).
    flops: Callable[[Any], float]
    coverage: CoverageSpec
    #: ``(random.Random, case_id, dtypes) -> case fields``: one random *valid* case.
    fuzz: Callable[..., dict]
    error_inputs: tuple[ErrorInput, ...]
    mapping: tuple[Canonical, ...]
    report: ReportSpec
    #: The Note that states the canonical semantics (module path), for readers and ``conform list --op``.
    doc: str = ""
    #: The backward pass; None: the operator has no gradient results.
    gradient: Optional[GradientSpec] = None

    def operand(self, name: str) -> Operand:
        return next(o for o in self.operands if o.name == name)
