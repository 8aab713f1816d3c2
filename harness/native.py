"""The inverse of the adapters' mappings: a native call, in a surface's own vocabulary, as canonical case fields.

Note [Native vocabularies]
--------------------------
Each surface declares, per operator, an ``Inverse``: the native parameters its API takes (``schema``: name
-> ``Arg``, each with a parser that checks the value's type and returns it normalised: ints as pairs where
the API takes either, TF's 1/2/4-int lists as 2 ints, tuples as lists; and the API's default), how a
normalised native call reads as canonical fields (``canonical``), and how the parameters are read back
from a ``Program`` the adapter built (``read``). ``Backend.from_native`` and ``Backend.to_native`` are
these two directions; ``normalise`` is what makes "the same native call" comparable (a round trip is equal
up to it: ``2`` and ``[2, 2]``, an omitted default and the default written out).

A native value whose meaning the canonical semantics cannot express (torch's ``padding_mode='reflect'``,
a TF stride on the batch axis, MindSpore's ``padding`` with ``pad_mode='same'``) raises
``NativeParamError`` naming the parameter and why; so does an unknown name (the message lists the known
ones), a value of the wrong type, or an explicit None where the API's own default is not None. Parameters that do not change the function (``name``, a dtype, an
initializer whose values conform replaces with its own operands) are accepted and dropped (``Arg.ignored``).
Tensors are given by their shape (``filters: [kh, kw, C_out/groups, C_in]``), as ``to_native`` needs the
operands' canonical shapes (``shapes``) to say them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from harness.backends.base import NativeParamError
from harness.backends.program import Call as Expr
from harness.backends.program import Program, Ref

REQUIRED = object()   # an Arg without a default


@dataclass(frozen=True)
class Arg:
    """One native parameter: ``parse(name, value)`` checks and normalises it; ``default`` is the API's."""

    parse: Callable[[str, Any], Any]
    default: Any = None
    ignored: bool = False      # accepted, no effect on the function: dropped by ``normalise``


@dataclass(frozen=True)
class Inverse:
    """One surface's native form of one operator (Note [Native vocabularies])."""

    api: str                                               # e.g. "tf.nn.conv2d_transpose"
    schema: dict[str, Arg]
    canonical: Callable[[dict, list], dict]                # normalised native, input_shape -> canonical fields
    read: Callable[[Program, dict], dict]                  # program, canonical operand shapes -> native
    complete: Optional[Callable[[dict], dict]] = None      # defaults that depend on other parameters
    #: A second API the same operator may be posed through on this surface (mindspore.ops pooling):
    #: chosen when the native call names a parameter only it has.
    alternative: Optional["Inverse"] = None
    only_alternative: tuple[str, ...] = field(default=())

    def pick(self, native: dict) -> "Inverse":
        if self.alternative is not None and any(name in native for name in self.only_alternative):
            return self.alternative
        return self

    def normalise(self, native: dict) -> dict:
        inverse = self.pick(native)
        out = parse(native, inverse.schema, inverse.api)
        return inverse.complete(out) if inverse.complete else out

    def from_native(self, native: dict, input_shape) -> dict:
        shape = _input_shape(input_shape)
        inverse = self.pick(native)
        return inverse.canonical(self.normalise(native), shape)

    def to_native(self, program: Program, shapes: Optional[dict]) -> dict:
        return self.normalise(self.read(program, shapes or {}))

    def minimal(self, native: dict) -> dict:
        """The normalised call without the parameters equal to the API's default (what a person writes)."""
        inverse = self.pick(native)
        full = self.normalise(native)
        return {k: v for k, v in full.items()
                if inverse.schema[k].default is REQUIRED or v != _default(inverse.schema[k], k)}


def _default(arg: Arg, name: str):
    return None if arg.default is None else arg.parse(name, arg.default)


def _input_shape(value) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != 4 or not all(_is_int(v) and v >= 0 for v in value):
        raise NativeParamError("input", f"the input shape is 4 ints ≥ 0 in the native layout, got {value!r}")
    return list(value)


def parse(native: dict, schema: dict[str, Arg], api: str) -> dict:
    """``native`` checked against ``schema``: every known parameter, normalised, defaults filled in."""
    if not isinstance(native, dict):
        raise NativeParamError("", f"{api}: the native parameters are a mapping, got {type(native).__name__}")
    unknown = [name for name in native if name not in schema]
    if unknown:
        raise NativeParamError(str(unknown[0]), f"{api} has no parameter {unknown[0]!r}; its parameters: "
                                                f"{', '.join(schema)}")
    out = {}
    for name, arg in schema.items():
        value = native.get(name, arg.default)
        if value is REQUIRED:
            raise NativeParamError(name, f"{api}: {name!r} is required")
        if arg.ignored:
            continue
        if value is None and arg.default is not None:
            # None means "the default" only where the API's own default is None; elsewhere the API fails on it
            if arg.default is REQUIRED:
                raise NativeParamError(name, f"{api}: {name!r} is required; None is not a value of it")
            raise NativeParamError(name, f"{api} does not take {name}=None (None means the default only where the "
                                         f"API's default is None; {name}'s default is {arg.default!r})")
        out[name] = None if value is None else arg.parse(name, value)
    return out


# ---------------------------------------------------------------- value parsers

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum: int = 0) -> Callable:
    def check(name, value):
        if not _is_int(value) or value < minimum:
            raise NativeParamError(name, f"expected an int ≥ {minimum}, got {value!r}")
        return value
    return check


def ints(count: int, minimum: int = 0, scalar: bool = True) -> Callable:
    """An int (when ``scalar``: the same on every axis) or a list/tuple of ``count`` ints, as a list."""
    def check(name, value):
        values = [value] * count if scalar and _is_int(value) else value
        if not isinstance(values, (list, tuple)) or len(values) != count or not all(_is_int(v) for v in values):
            what = f"an int or {count} ints" if scalar else f"{count} ints"
            raise NativeParamError(name, f"expected {what}, got {value!r}")
        if min(values) < minimum:
            raise NativeParamError(name, f"must be ≥ {minimum}, got {value!r}")
        return list(values)
    return check


def pair(minimum: int = 0) -> Callable:
    """An int (both axes) or 2 ints, as a list of 2."""
    return ints(2, minimum)


def boolean(name, value):
    if not isinstance(value, bool):
        raise NativeParamError(name, f"expected true or false, got {value!r}")
    return value


def choice(*options, fold_case: bool = False) -> Callable:
    """One of ``options`` (strings); ``fold_case``: the API compares them case-insensitively (normalised to the
    first spelling of the option)."""
    def check(name, value):
        if isinstance(value, str):
            for option in options:
                if value == option or (fold_case and value.lower() == option.lower()):
                    return option
        raise NativeParamError(name, f"expected one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return check


def only(allowed, why: str) -> Callable:
    """A parameter whose other values have no canonical form (``why`` says so)."""
    def check(name, value):
        if not (value is allowed or (type(value) is type(allowed) and value == allowed)):
            raise NativeParamError(name, f"{value!r}: {why}")
        return value
    return check


def anything(name, value):
    return value


def either(*parsers) -> Callable:
    """The first parser that accepts the value; otherwise every parser's complaint."""
    def check(name, value):
        problems = []
        for p in parsers:
            try:
                return p(name, value)
            except NativeParamError as exc:
                problems.append(exc.message)
        raise NativeParamError(name, "; or ".join(problems))
    return check


# ---------------------------------------------------------------- canonical helpers

def symmetric(pads: list[int]) -> list[int]:
    """(ph, pw), symmetric per axis, as canonical [top, bottom, left, right]."""
    return [pads[0], pads[0], pads[1], pads[1]]


def channels(input_shape: list[int], layout: str) -> int:
    return input_shape[3] if layout == "NHWC" else input_shape[1]


def expect(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise NativeParamError(name, message)


# ---------------------------------------------------------------- reading programs

def plain(value):
    """A program's literal as plain data: tuples as lists (recursively)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def calls(program: Program):
    """Every ``Call`` expression in the program's steps (nested ones too), in order."""
    found = []

    def walk(expr):
        if isinstance(expr, Expr):
            found.append(expr)
            walk(expr.fn)
            for a in expr.args:
                walk(a)
            for v in expr.kwargs.values():
                walk(v)
        elif isinstance(expr, (list, tuple)):
            for v in expr:
                walk(v)
    for step in program.steps:
        walk(step.expr)
    return found


def find_call(program: Program, fn: str) -> Expr:
    """The first call of the dotted function ``fn`` in the program (``LookupError`` if none)."""
    for expr in calls(program):
        if expr.fn == fn or (isinstance(expr.fn, Expr) and expr.fn.fn == fn):
            return expr.fn if isinstance(expr.fn, Expr) else expr
    raise LookupError(f"the program calls no {fn}")


def has_call(program: Program, fn: str) -> bool:
    try:
        find_call(program, fn)
    except LookupError:
        return False
    return True


def applied(program: Program, fn: str) -> Expr:
    """The call of the object ``fn(...)`` builds: ``fn(...)(x)`` inline or ``net = fn(...)`` then ``net(x)``."""
    target = None
    for step in program.steps:
        expr = step.expr
        if isinstance(expr, Expr) and isinstance(expr.fn, Expr) and expr.fn.fn == fn:
            return expr
        if isinstance(expr, Expr) and expr.fn == fn and step.target:
            target = step.target
        elif target and isinstance(expr, Expr) and expr.fn == Ref(target):
            return expr
    raise LookupError(f"the program applies no {fn}")


def shape_of(shapes: dict, name: str) -> list[int]:
    """A canonical operand's shape (``to_native`` needs it for parameters the tensors carry)."""
    if name not in shapes:
        raise ValueError(f"to_native needs the shape of the operand {name!r} (shapes=...): this surface's "
                         "parameters include the tensor's shape")
    return list(shapes[name])


def operand_shapes(call) -> dict:
    """The canonical operand shapes of a ``Call`` (``to_native``'s ``shapes``)."""
    return {name: tuple(array.shape) for name, array in call.arrays.items()}
