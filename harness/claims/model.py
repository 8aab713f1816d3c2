"""The claim file format (README "Claim files"): the pydantic models, sweep expansion, ``=expr`` values.

A claim file has ``claims:`` (a list), optional ``defaults:`` merged into
every claim. A claim's ``sweep`` is a mapping of variable -> values (the
cartesian product) or an explicit list of points (mappings of variable ->
value); any string ``"=expr"`` in ``input`` or in a side's native parameters
is an integer expression over the point's variables (``=(16 - 1) * s + k``:
``+ - * // %``, parentheses, ``min``/``max``), so a parameter one surface
spells as a shape (tf.nn's ``output_shape``) follows the sweep too.
"""

from __future__ import annotations

import ast
import itertools
import operator
import re
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.cases import ID_MAX, ID_PATTERN, Tolerance

#: Points one claim may sweep: each point runs every side, so a claim stays a check, not a suite.
MAX_SWEEP_POINTS = 64
#: Claims one suite may hold.
MAX_CLAIMS = 2_000
VARIABLE = r"^[a-z_][a-z0-9_]{0,30}$"
#: Longest ``=expr`` read: a size formula is a line; thousands of terms would only exhaust the parser's stack.
MAX_EXPR = 500


class Claim(BaseModel):
    """One claim as written (``sides`` and ``input`` may hold ``=expr`` strings until a point is expanded)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)
    op: str
    source: Optional[str] = None
    description: Optional[str] = None
    input: list[Union[int, str]] = Field(min_length=4, max_length=4,
                                         description="N, C, H, W: canonical NCHW, whatever each side's layout")
    dtype: Literal["float16", "bfloat16", "float32", "float64"] = "float32"
    data: dict[str, Any] = Field(default_factory=dict)
    tolerance: Optional[Tolerance] = None
    sides: dict[str, dict[str, Any]] = Field(min_length=2)
    sweep: Union[dict[str, list[Any]], list[dict[str, Any]], None] = None
    expect: Literal["holds", "breaks"] = "holds"
    reason: Optional[str] = Field(default=None, min_length=1)
    #: Registry entry ids (or their leading part: ``F1``) that must explain a side at the breaking point.
    explained_by: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _expected_break_says_why(self):
        if self.expect == "breaks" and not self.reason:
            raise ValueError("a claim expected to break needs a `reason` (why it breaks, e.g. which "
                             "known divergence)")
        if self.explained_by and self.expect != "breaks":
            raise ValueError("`explained_by` names what explains a break: only with expect: breaks")
        return self


class ExprError(ValueError):
    pass


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_FUNCTIONS = {"min": min, "max": max}


def evaluate(text: str, variables: dict[str, Any]) -> Any:
    """The value of ``=expr`` (``text`` without the ``=``): integers, the point's variables, ``+ - * // %``,
    ``min``/``max``. Anything else is an ``ExprError`` saying what."""
    if len(text) > MAX_EXPR:
        raise ExprError(f"the expression {text[:40]!r}... is {len(text)} characters long; the limit is {MAX_EXPR}")
    try:
        return _evaluate(text, variables)
    except ExprError:
        raise
    except (RecursionError, MemoryError, OverflowError, ValueError) as exc:   # nested too deeply, too large
        why = str(exc)[:200] or type(exc).__name__
        raise ExprError(f"cannot evaluate {text[:60]!r}: {why}") from None


def _evaluate(text: str, variables: dict[str, Any]) -> Any:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"cannot parse {text!r}: {exc.msg}") from None

    def value(node):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in variables:
                known = ", ".join(sorted(variables)) or "none: the claim has no sweep"
                raise ExprError(f"unknown variable {node.id!r} (the sweep's variables: {known})")
            return variables[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and right == 0:
                raise ExprError(f"division by zero in {text!r}")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                and node.args and not node.keywords):
            return _FUNCTIONS[node.func.id](*(value(a) for a in node.args))
        raise ExprError(f"{ast.unparse(node)!r} is not allowed in an expression (integers, sweep variables, "
                        "+ - * // %, parentheses, min, max)")

    result = value(tree.body)
    if isinstance(result, int) and abs(result) > 1 << 40:
        raise ExprError(f"{text!r} is {result}: far beyond any tensor size")
    return result


def substitute(value: Any, variables: dict[str, Any], path: tuple, errors: list[tuple[tuple, str]]) -> Any:
    """``value`` with every ``"=expr"`` string replaced by its value; problems appended as (path, message)."""
    if isinstance(value, str) and value.startswith("="):
        try:
            return evaluate(value[1:], variables)
        except (ExprError, TypeError) as exc:   # TypeError: arithmetic on a string-valued variable
            errors.append((path, str(exc)))
            return None
    if isinstance(value, dict):
        return {k: substitute(v, variables, path + (k,), errors) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables, path + (i,), errors) for i, v in enumerate(value)]
    return value


def points(sweep) -> list[tuple[dict[str, Any], tuple]]:
    """The sweep's points, each with the path of the YAML node that wrote it (for line numbers)."""
    if sweep is None:
        return [({}, ())]
    if isinstance(sweep, list):
        return [(dict(point), (index,)) for index, point in enumerate(sweep)]
    names = list(sweep)
    return [(dict(zip(names, combo)), ()) for combo in itertools.product(*(sweep[n] for n in names))]


def sweep_problems(sweep) -> list[tuple[tuple, str]]:
    """What is wrong with a sweep's shape: (path under ``sweep``, message)."""
    found: list[tuple[tuple, str]] = []
    if sweep is None:
        return found
    if isinstance(sweep, dict):
        for name, values in sweep.items():
            if not re.match(VARIABLE, str(name)):
                found.append(((name,), f"{name!r} is not a variable name (lower case letters, digits, _)"))
            if not values:
                found.append(((name,), "a sweep variable needs at least one value"))
        size = 1
        for values in sweep.values():
            size *= max(1, len(values))
    else:
        names = set(sweep[0]) if sweep else set()
        for index, point in enumerate(sweep):
            bad = [n for n in point if not re.match(VARIABLE, str(n))]
            if bad:
                found.append(((index,), f"{bad[0]!r} is not a variable name (lower case letters, digits, _)"))
            if set(point) != names:
                found.append(((index,), f"every point names the same variables ({', '.join(sorted(names))})"))
        size = len(sweep)
        if not sweep:
            found.append(((), "an explicit sweep needs at least one point"))
    if size > MAX_SWEEP_POINTS:
        found.append(((), f"the sweep has {size} points; a claim may sweep at most {MAX_SWEEP_POINTS} "
                           "(split it into several claims)"))
    return found


def label(variables: dict[str, Any]) -> str:
    """The id suffix of a point: ``[k=2,s=3]`` (empty without a sweep)."""
    if not variables:
        return ""
    return "[" + ",".join(f"{k}={v}" for k, v in variables.items()) + "]"
