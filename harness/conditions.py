"""Declarative conditions over named values: the ``when:`` of a registry entry.

A condition set maps a *name* (a case parameter, ``dtype``, or a value the
operator's semantics derives, e.g. ``kernel_below_stride``) to a condition on
its value; every entry of the set must hold::

    when:
      padding_form: valid                 # equality
      dtype: [float16, float32]           # one of
      out_channels_per_group: {lt: 1}     # eq, ne, in, gt, ge, lt, le
      crops: {any: {gt: 0}}               # any / all over a per-axis value
      output_size_is_default: {not: true} # negation
      any_of:                             # one of several condition sets
        - {bias: true}
        - {output_padding_holds_values: true}
      on_some_axis: {in_size: 1, out_below_effective_kernel: true}   # together on one axis

A condition on a per-axis value (a list such as ``stride: [h, w]``) must hold
on *every* axis, as ``stride: 2`` means ``[2, 2]`` in a case file. Except:
``eq``/``ne`` with a list operand, and a list of lists, compare the whole
value (``stride: {eq: [2, 3]}``); ``not`` negates the whole condition;
``any``/``all`` apply their condition to each axis. Ordering operators hold
only for numbers. Nothing is evaluated as code.
"""

from __future__ import annotations

import difflib
from typing import Any, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter,
                      ValidationError, model_validator)

Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr, None]
Value = Union[Scalar, list[Scalar]]
Number = Union[StrictInt, StrictFloat]
COMBINATORS = ("any_of", "on_some_axis")


class Test(BaseModel):
    """A mapping of operators, all of which must hold."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    eq: Value = None
    ne: Value = None
    in_: Optional[list[Value]] = Field(None, alias="in", min_length=1)
    gt: Optional[Number] = None
    ge: Optional[Number] = None
    lt: Optional[Number] = None
    le: Optional[Number] = None
    not_: Optional["Condition"] = Field(None, alias="not")
    any: Optional["Condition"] = None
    all: Optional["Condition"] = None

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.model_fields_set:
            raise ValueError("an empty condition; give one of eq, ne, in, gt, ge, lt, le, not, any, all")
        for name in ("in_", "gt", "ge", "lt", "le"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name.rstrip('_')} needs {'a list' if name == 'in_' else 'a number'}, not null")
        return self

    def holds(self, value: Any) -> bool:
        for name in self.model_fields_set:
            operand = getattr(self, name)
            if name == "eq" and not _equals(operand, value):
                return False
            if name == "ne" and _equals(operand, value):
                return False
            if name == "in_" and not _one_of(operand, value):
                return False
            if name in ("gt", "ge", "lt", "le") and not _every(value, lambda v: _compare(name, v, operand)):
                return False
            if name == "not_" and holds(operand, value):
                return False
            if name == "any" and not any(holds(operand, v) for v in _axes(value)):
                return False
            if name == "all" and not all(holds(operand, v) for v in _axes(value)):
                return False
        return True


Condition = Union[Test, list[Value], Scalar]
Test.model_rebuild()
_CONDITION = TypeAdapter(Condition)


def _axes(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _every(value: Any, test) -> bool:
    return all(test(v) for v in _axes(value))


def _same(a: Any, b: Any) -> bool:
    """Equality where True is not 1 and lists compare element by element."""
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _equals(operand: Any, value: Any) -> bool:
    if isinstance(operand, list):
        return _same(operand, value)
    return _every(value, lambda v: _same(operand, v))


def _one_of(options: list, value: Any) -> bool:
    if any(isinstance(o, list) for o in options):
        return any(_same(o, value) for o in options)
    return _every(value, lambda v: any(_same(o, v) for o in options))


def _compare(op: str, value: Any, operand) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return {"gt": value > operand, "ge": value >= operand, "lt": value < operand, "le": value <= operand}[op]


def holds(condition: Any, value: Any) -> bool:
    """Whether a validated condition holds for ``value``."""
    if isinstance(condition, Test):
        return condition.holds(value)
    if isinstance(condition, list):
        return _one_of(condition, value)
    return _equals(condition, value)


class Conditions:
    """A validated condition set; ``clauses`` are its top-level entries, in file order."""

    def __init__(self, clauses: list[tuple[str, Any]]):
        self.clauses = clauses

    def failing(self, values: dict) -> list[str]:
        """Names of the top-level clauses that do not hold for ``values``."""
        return [name for name, condition in self.clauses if not _clause_holds(name, condition, values)]

    def holds(self, values: dict) -> bool:
        return not self.failing(values)


def _clause_holds(name: str, condition: Any, values: dict) -> bool:
    if name == "any_of":
        return any(c.holds(values) for c in condition)
    if name == "on_some_axis":
        # Each axis sees every value at that axis, so the inner set may use any_of (or nest) like any other.
        lengths = [len(values[n]) for n in _names(condition) if isinstance(values.get(n), list)]
        return any(condition.holds({n: _axis_value(v, i) for n, v in values.items()})
                   for i in range(max(lengths, default=1)))
    return name in values and holds(condition, values[name])


def _names(conditions: Conditions) -> set[str]:
    """The value names a condition set tests, through any_of and on_some_axis."""
    found = set()
    for name, condition in conditions.clauses:
        if name == "any_of":
            found |= {n for inner in condition for n in _names(inner)}
        elif name == "on_some_axis":
            found |= _names(condition)
        else:
            found.add(name)
    return found


def _axis_value(value: Any, i: int) -> Any:
    if not isinstance(value, list):
        return value
    return value[i] if i < len(value) else object()   # a missing axis matches nothing


def parse(raw: Any, names: dict[str, str], path: tuple) -> tuple[Optional[Conditions], list[tuple[tuple, str]]]:
    """Validate a ``when`` mapping against the known ``names``; return it and (path, message) problems."""
    if not isinstance(raw, dict) or not raw:
        return None, [(path, "a non-empty mapping of conditions (name: condition)")]
    clauses, problems = [], []
    for name, value in raw.items():
        where = path + (name,)
        if name == "any_of":
            if not isinstance(value, list) or not value:
                problems.append((where, "any_of is a non-empty list of condition mappings"))
                continue
            parts = [parse(v, names, where + (i,)) for i, v in enumerate(value)]
            problems += [p for _, found in parts for p in found]
            clauses.append((name, [c for c, _ in parts]))
        elif name == "on_some_axis":
            inner, found = parse(value, names, where)
            problems += found
            clauses.append((name, inner))
        elif name not in names:
            close = difflib.get_close_matches(str(name), sorted(names) + list(COMBINATORS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((where, f"unknown condition name{hint}"))
        else:
            try:
                clauses.append((name, _CONDITION.validate_python(value)))
            except ValidationError as exc:
                problems.append((where, _first_message(exc)))
    return (Conditions(clauses) if not problems else None), problems


_TYPE_TAGS = {"int", "float", "str", "bool", "none", "list"}


def _first_message(exc: ValidationError) -> str:
    """One message for a union's errors: the operator mapping's own, when the value is a mapping."""
    errors = exc.errors()
    own = [e for e in errors if e["loc"] and "Test" in str(e["loc"][0]) and e["type"] not in ("model_type",
                                                                                            "dict_type")]
    if not own:
        return "a value, a list of values, or a mapping of operators (eq, ne, in, gt, ge, lt, le, not, any, all)"
    depth = max(sum("Test" in str(p) for p in e["loc"]) for e in own)   # the innermost mapping's errors
    own = [e for e in own if sum("Test" in str(p) for p in e["loc"]) == depth]
    first = own[0]
    if first["type"] == "extra_forbidden":
        return f"unknown operator {first['loc'][-1]!r}; use eq, ne, in, gt, ge, lt, le, not, any, all"
    where = [str(p) for p in first["loc"][1:] if str(p) not in _TYPE_TAGS and "[" not in str(p)
             and not str(p).startswith("function-")]
    same = [e["msg"].removeprefix("Input should be ") for e in own if e["loc"][:len(first["loc"]) - 1]
            == first["loc"][:-1]]
    message = first["msg"].removeprefix("Value error, ")
    if len(same) > 1:
        message = "should be " + " or ".join(dict.fromkeys(same))
    return f"{'.'.join(w.rstrip('_') for w in where)}: {message}" if where else message
