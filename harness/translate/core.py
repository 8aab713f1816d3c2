"""A native call of one surface as the call of another that computes the same function (Note [Translation]).

``translate`` reads the source call through its adapter's inverse mapping (``Backend.from_native``: the
canonical case it means), asks the target's adapter for its ``Program`` for that case (the program conform
itself runs), and reads the target's native parameters back from it (``Backend.to_native``). Whether
those parameters alone are the translation is decided by reading them forward again: when the target's
``from_native`` of them resolves to the same crops/pads, sizes and layout as the source's meaning, the call
is the whole answer (``exact``); otherwise the program's other steps (a slice, a ``Cropping2D`` layer, an
``F.pad``) are part of it and the program's notes say why. Of the two layouts the target might take the
operands in, the one whose call is exact (then: with fewer emulation notes; then: the source's) is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.backends import backend_class
from harness.backends.base import NativeParamError, Unsupported
from harness.backends.program import Program
from harness.cases import Case
from harness.claims import model
from harness.claims.load import ClaimSpec, Point, Side, canonical_fields, side_call, side_case
from harness.native import operand_shapes
from harness.translate.parse import TranslateInputError
from harness.translate.spellings import alternatives, same_meaning

#: The default input's height and width when ``--input`` is not given (the channels come from the call).
DEFAULT_HW = 16
DTYPE = "float32"
LAYOUTS = ("NCHW", "NHWC")


@dataclass
class Translation:
    op: str
    source: str
    target: str
    source_native: dict       # the call as given (positional arguments bound to their names)
    source_input: list        # in the source's layout
    nchw: list                # the same input, canonical NCHW
    source_case: Case         # the source call's canonical meaning
    case: Case                # the same meaning in the target's layout
    program: Program          # the target adapter's program for it
    native: dict              # the target's native parameters (normalised, every default written out)
    minimal: dict             # ... without the API's defaults
    exact: bool               # the native call alone computes the function (no steps around it)

    @property
    def layout(self) -> str:
        return layout_of(self.case)

    @property
    def target_input(self) -> list:
        return in_layout(self.nchw, self.layout)

    @property
    def notes(self) -> tuple:
        return tuple(self.program.notes)


class CannotExpress(Unsupported):
    """The target cannot express the source call (exit 1); carries the source call's reading, to be said."""

    def __init__(self, reason: str, source: str, op: str, source_native: dict, source_input: list, source_case: Case):
        super().__init__(reason)
        self.source, self.op, self.source_native = source, op, source_native
        self.source_input, self.source_case = source_input, source_case


def layout_of(case: Case) -> str:
    return case.params.model_dump().get("layout", "NCHW")


def in_layout(nchw: list, layout: str) -> list:
    n, c, h, w = nchw
    return [n, h, w, c] if layout == "NHWC" else [n, c, h, w]


def to_nchw(shape: list, layout: str) -> list:
    n, a, b, c = shape
    return [n, c, a, b] if layout == "NHWC" else [n, a, b, c]


def surface(surface_id: str):
    """The adapter class of a surface that has a native vocabulary (``TranslateInputError`` otherwise)."""
    from harness.backends import registry
    known = [b for b in registry() if backend_class(b).NATIVE]
    if surface_id not in registry():
        raise TranslateInputError(f"unknown surface {surface_id!r}; known: {', '.join(known)}")
    cls = backend_class(surface_id)
    if not cls.NATIVE or not getattr(cls, "plans_calls", False):
        raise TranslateInputError(f"{surface_id} has no native vocabulary to translate from or to (surfaces "
                                  f"that have one: {', '.join(known)})")
    return cls


def claim_spec(op: str, source: str, target: str, native: dict, nchw: list) -> ClaimSpec:
    """The in-memory claim a translation's sides are built in (and verified as)."""
    claim = model.Claim(id="translate", op=op, source="conform translate", input=list(nchw), dtype=DTYPE,
                        sides={source: dict(native), target: {}})
    return ClaimSpec(claim, "<translate>", 0)


def point_at(spec: ClaimSpec, nchw: list) -> Point:
    n, c, h, w = nchw
    label = model.label({"n": n, "c": c, "h": h, "w": w})
    return Point(spec.id + label, {"n": n, "c": c, "h": h, "w": w}, list(nchw), [], 0)


def meaning_case(spec: ClaimSpec, point: Point, side: str, fields: dict) -> Case:
    case = side_case(spec, point, side, fields)
    if isinstance(case, str):   # from_native gave fields the case model refuses: a call with no canonical form
        raise TranslateInputError(f"the {side} call has no canonical form: {case}")
    return case


def read_source(source: str, op: str, native: dict, input_shape: Optional[list]) -> tuple[dict, list]:
    """The source call's canonical fields and its input in NCHW (``input_shape``: in the source's layout;
    None: a small default whose channels the call accepts)."""
    cls = surface(source)
    if input_shape is not None:
        fields = cls.from_native(op, dict(native), list(input_shape))
        return fields, to_nchw(list(input_shape), fields.get("layout", "NCHW"))
    first_error = None
    for channels in _channel_candidates(native):
        nchw = [1, channels, DEFAULT_HW, DEFAULT_HW]
        try:
            return canonical_fields(cls, op, native, nchw), nchw
        except NativeParamError as exc:   # channels the call does not accept, or a parameter it cannot have
            first_error = first_error or exc
    raise first_error


def _channel_candidates(native: dict) -> list[int]:
    """Input channels to try for the default input: 3, then every int the call mentions (in_channels,
    a weight shape's entries, ...), in order."""
    found = [3]

    def walk(value):
        if isinstance(value, bool):
            return
        if isinstance(value, int) and 1 <= value <= 4096 and value not in found:
            found.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
    for value in native.values():
        walk(value)
    return found


def translate(source: str, target: str, op: str, native: dict, input_shape: Optional[list] = None) -> Translation:
    """The target call computing what ``native`` computes on ``source`` (``NativeParamError``/
    ``TranslateInputError``: bad input; ``Unsupported``: the target cannot express it)."""
    if source == target:
        raise TranslateInputError(f"--from and --to both name {source}")
    target_cls = surface(target)
    fields, nchw = read_source(source, op, native, input_shape)
    spec = claim_spec(op, source, target, native, nchw)
    point = point_at(spec, nchw)
    source_case = meaning_case(spec, point, source, fields)
    source_layout = layout_of(source_case)
    if source_case.resolved is None:
        raise TranslateInputError(f"the {source} call is one the canonical semantics rejects on input "
                                  f"{in_layout(nchw, source_layout)}: {source_case.invalid_reason}")
    if op not in target_cls.NATIVE:
        raise CannotExpress(f"{target} has no native form of {op} (it has: {', '.join(target_cls.NATIVE)})",
                            source, op, dict(native), in_layout(nchw, source_layout), source_case)
    try:
        program, full, exact, case = best_target(spec, point, target, fields, source_case)
    except Unsupported as exc:
        raise CannotExpress(str(exc), source, op, dict(native), in_layout(nchw, source_layout), source_case) from None
    minimal = target_cls.native_inverse(op).minimal(full)
    return Translation(op, source, target, dict(native), in_layout(nchw, source_layout), nchw, source_case, case,
                       program, full, minimal, exact)


def best_target(spec: ClaimSpec, point: Point, target: str, fields: dict, source_case: Case):
    """The target's best program for the source's meaning: over every spelling of it (``spellings``) and both
    layouts, an exact call first, then the fewest emulation notes, then one without a fallback, then the
    source's own spelling and layout.
    ``Unsupported`` (the reason for the source's own spelling) when the target poses none of them."""
    meaning = _unlaid(source_case.resolved.as_dict())
    source_layout = layout_of(source_case)
    found, refusals = [], []
    for index, spelling in enumerate(alternatives(fields, source_case.resolved.as_dict())):
        for order, layout in enumerate(sorted(LAYOUTS, key=lambda lay: lay != source_layout)):
            case = side_case(spec, point, target, {**spelling, "layout": layout})
            if isinstance(case, str) or case.resolved is None:
                continue
            if index and not same_meaning(_unlaid(case.resolved.as_dict()), meaning):
                break     # another function: not a spelling of this one (in either layout)
            try:
                program, native, exact, case = target_call(target, case)
            except Unsupported as exc:
                refusals.append(str(exc))
                continue
            # A program with a fallback runs another call where the framework's kernel refuses this one
            # (TensorFlow's NCHW on CPU): the layout without one is the call that runs as printed.
            rank = (not exact, len(program.notes), program.fallback is not None, index, order)
            found.append((rank, (program, native, exact, case)))
    if not found:
        raise Unsupported(refusals[0] if refusals else f"{target} poses no spelling of this call")
    return min(found, key=lambda item: item[0])[1]


def _unlaid(resolved: dict) -> dict:
    return {k: v for k, v in resolved.items() if k != "layout"}


def target_call(target: str, case: Case) -> tuple[Program, dict, bool, Case]:
    """The target adapter's program for ``case``, its native parameters, and whether they alone mean it."""
    cls = backend_class(target)
    call = side_call(Side(target, {}, case, 0))
    program = getattr(cls(), case.op)(call)
    native = cls.to_native(case.op, program, operand_shapes(call))
    return program, native, means_same(target, case, native), case


def means_same(surface_id: str, case: Case, native: dict) -> bool:
    """Whether ``native`` on ``surface_id`` (input in the case's layout) resolves to the case's own meaning:
    the same crops/pads as kept, sizes, layout and bias."""
    cls = backend_class(surface_id)
    nchw = to_nchw(list(case.params.model_dump()["input"]), layout_of(case))
    try:
        fields = cls.from_native(case.op, dict(native), in_layout(nchw, layout_of(case)))
    except (NativeParamError, ValueError, TypeError):
        return False
    spec = claim_spec(case.op, surface_id, "target", native, nchw)
    other = side_case(spec, point_at(spec, nchw), surface_id, fields)
    if isinstance(other, str) or other.resolved is None or case.resolved is None:
        return False
    return same_meaning(other.resolved.as_dict(), case.resolved.as_dict())
