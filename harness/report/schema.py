"""The shape of a report.json that ``conform report`` and ``conform diff`` rely on.

report.json is written by conform but read back as user input: it may come
from another version, another tool, or a hand edit. Before any reporter
touches it, ``check`` validates the fields the readers use (types, not
values: unknown verdicts and extra fields are fine, a newer writer may add
them) and turns the first violations into one message naming their JSON
paths. The document itself is returned unchanged.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

Number = Union[StrictInt, StrictFloat]
Ratio = Optional[Union[Number, StrictStr]]      # report.json writes inf/nan as strings


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Error(_Lenient):
    type: Optional[StrictStr] = None
    message: Optional[StrictStr] = None


class _Divergence(_Lenient):
    id: Optional[StrictStr] = None
    reason: Optional[StrictStr] = None
    link: Optional[StrictStr] = None


class _Metrics(_Lenient):
    bound_ratio: Ratio = None


class Result(_Lenient):
    case: StrictStr
    backend: StrictStr
    verdict: StrictStr
    file: Optional[StrictStr] = None
    line: Optional[StrictInt] = None
    op: Optional[StrictStr] = None
    dtype: Optional[StrictStr] = None
    params: Optional[dict[StrictStr, Any]] = None
    reason: Optional[StrictStr] = None
    source: Optional[StrictStr] = None
    description: Optional[StrictStr] = None
    expected_shape: Optional[list[StrictInt]] = None
    actual_shape: Optional[list[StrictInt]] = None
    metrics: Optional[_Metrics] = None
    tolerance: Optional[dict[StrictStr, Any]] = None
    error: Optional[_Error] = None
    native_call: Optional[StrictStr] = None
    emulated: Optional[StrictBool] = None
    notes: Optional[list[StrictStr]] = None
    duration_ms: Optional[Number] = None
    divergence: Optional[_Divergence] = None
    resembles: Optional[_Divergence] = None
    spread: Optional[dict[StrictStr, Any]] = None
    version_delta: Optional[dict[StrictStr, Any]] = None
    case_hash: Optional[StrictStr] = None
    backend_version: Optional[StrictStr] = None
    original_verdict: Optional[StrictStr] = None
    agrees_with: Optional[list[StrictStr]] = None
    suspect_oracle: Optional[StrictBool] = None
    repro: Optional[StrictStr] = None
    heatmap: Optional[StrictStr] = None
    gradient: Optional[StrictStr] = None         # null/missing: the forward output; "x", "w", "b": a vjp
    forward_failed: Optional[StrictBool] = None
    gradient_call: Optional[StrictStr] = None


class _Gate(_Lenient):
    passed: Optional[StrictBool] = None
    strict: Optional[StrictBool] = None


class _BackendEnv(_Lenient):
    version: Optional[StrictStr] = None


class _Environment(_Lenient):
    backends: Optional[dict[StrictStr, _BackendEnv]] = None


class _Summary(_Lenient):
    by_verdict: Optional[dict[StrictStr, StrictInt]] = None
    by_backend: Optional[dict[StrictStr, dict[StrictStr, StrictInt]]] = None


class _Stale(_Lenient):
    id: Optional[StrictStr] = None
    file: Optional[StrictStr] = None
    line: Optional[StrictInt] = None
    reason: Optional[StrictStr] = None


class Report(_Lenient):
    schema_: StrictStr = Field(alias="schema")
    created: Optional[StrictStr] = None
    duration_s: Optional[Number] = None
    incomplete: Optional[StrictBool] = None
    gate: Optional[_Gate] = None
    environment: Optional[_Environment] = None
    summary: Optional[_Summary] = None
    stale_divergences: Optional[list[_Stale]] = None
    results: list[Result]


_EXPECTED = {"string_type": "a string", "int_type": "an integer", "bool_type": "true or false",
             "float_type": "a number", "dict_type": "a mapping", "model_type": "a mapping", "list_type": "a list",
             "model_attributes_type": "a mapping"}


def _where(loc: tuple) -> str:
    """A JSON path as a reader writes it: ``results[0].notes[1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(error: dict) -> str:
    got = "null" if error.get("input") is None else type(error.get("input")).__name__
    expected = _EXPECTED.get(error["type"])
    return f"{_where(error['loc'])}: " + (f"expected {expected}, got {got}" if expected else error["msg"])


def check(report: dict) -> Optional[str]:
    """None if ``report`` has the shape readers rely on, else a message naming the offending fields."""
    try:
        Report.model_validate(report)
    except ValidationError as exc:
        errors = {}
        for error in exc.errors():   # a Union reports one error per branch; the first per path says enough
            errors.setdefault(_where(error["loc"]), error)
        errors = list(errors.values())
        shown = "; ".join(_problem(e) for e in errors[:3])
        return shown + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
    return None
