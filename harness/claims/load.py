"""Loading claim files: every point of every claim, each side with its canonical meaning, or problems.

For each point of a claim's sweep and each side, the side's native parameters
(``=expr`` computed) go through its adapter's inverse mapping,
``Backend.from_native(op, native, input_shape)`` with the input in the side's
own layout; a ``NativeParamError`` becomes a problem at the line of that native
parameter. The canonical fields it returns, plus the claim's input, dtype and
data, make one ``Case`` per side (the runner's unit). The adapter's Program for
that case is built in the parent (no framework is imported) and
``Backend.to_native`` of it must pose the claim's own native parameters
(``posed_differently``): an adapter that would emulate what the claim states
natively is refused here, before anything runs. With a memory budget (``harness.memory.Budget``, as for
cases) a side whose call would need more than it is refused at the claim's ``input``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from pydantic import ValidationError

from harness import ops
from harness.backends import backend_class, registry
from harness.backends.base import Call, NativeParamError
from harness.cases import ID_MAX, ID_PATTERN, Case, Expect, data_model, fields_model, pydantic_problems, suggest
from harness.claims import model
from harness.discovery import suite_files
from harness.memory import GIB, Budget
from harness.userfile import read_text
from harness.yamlsrc import Located, Problem, ProblemsError, load_yaml

TOP_LEVEL = {"defaults", "claims"}
_CLAIMS_KEY = re.compile(r"^claims\s*:", re.MULTILINE)


@dataclass
class Side:
    """One surface's call at one point: the claim's native parameters and their canonical meaning."""

    backend: str
    native: dict[str, Any]
    case: Case                          # the canonical meaning (input in this side's layout)
    line: int

    @property
    def layout(self) -> str:
        return self.case.params.model_dump().get("layout", "NCHW")


@dataclass
class Point:
    id: str
    variables: dict[str, Any]
    input: list[int]                    # canonical N, C, H, W
    sides: list[Side]
    line: int


@dataclass
class ClaimSpec:
    """A validated claim and its expanded points."""

    claim: model.Claim
    file: str
    line: int
    points: list[Point] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.claim.id

    @property
    def backends(self) -> list[str]:
        return list(self.claim.sides)


def is_claim_text(text: str) -> bool:
    """Whether a YAML file's text has a top-level ``claims:`` (cheap: decides which loader reads it)."""
    return bool(_CLAIMS_KEY.search(text))


def load_claims(paths: list[str], memory_budget: Optional[Budget] = None) -> list[ClaimSpec]:
    """Every claim under ``paths`` (claim files beside case files); raise ``ProblemsError`` with all problems.
    ``memory_budget`` refuses a claim any side of which would need more than it (as ``load_suite`` does)."""
    problems: list[Problem] = []
    claims: list[ClaimSpec] = []
    for path in suite_files(paths, []):   # the case loader reports unreadable paths once
        try:
            text = read_text(path, str(path))
        except ProblemsError:
            continue
        if is_claim_text(text):
            try:
                claims += load_file(path, text, memory_budget=memory_budget)
            except ProblemsError as exc:
                problems += exc.problems
    seen: dict[str, ClaimSpec] = {}
    for spec in claims:
        if spec.id in seen:
            first = seen[spec.id]
            problems.append(Problem(spec.file, spec.line, "id",
                                    f"duplicate claim id {spec.id!r} (first at {first.file}:{first.line})"))
        seen.setdefault(spec.id, spec)
    if len(claims) > model.MAX_CLAIMS:
        problems.append(Problem(claims[0].file, 1, "claims", f"the suite holds {len(claims)} claims; the "
                                                            f"limit is {model.MAX_CLAIMS}"))
    if problems:
        raise ProblemsError(problems)
    return claims


def load_file(path: Path, text: Optional[str] = None, display: Optional[str] = None,
              memory_budget: Optional[Budget] = None) -> list[ClaimSpec]:
    """The claims of one claim file; raise ``ProblemsError`` listing every problem."""
    file = display or str(path)
    located = load_yaml(text if text is not None else read_text(path, file), file)
    doc = located.value
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list) or not doc["claims"]:
        raise ProblemsError([Problem(file, located.line_of(("claims",)), "claims",
                                     "a claim file is a mapping with a non-empty `claims` list")])
    problems = [Problem(file, located.line_of((key,)), str(key), "unknown top-level field of a claim file"
                        + suggest(str(key), TOP_LEVEL)) for key in doc if key not in TOP_LEVEL]
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(Problem(file, located.line_of(("defaults",)), "defaults", "defaults must be a mapping"))
        defaults = {}
    out = []
    for index, raw in enumerate(doc["claims"]):
        where = ("claims", index)
        if not isinstance(raw, dict):
            problems.append(Problem(file, located.line_of(where), f"claims[{index}]", "a claim is a mapping"))
            continue
        spec = _claim(raw, defaults, where, file, located, problems)
        refused = _over_budget(spec, memory_budget) if spec is not None and memory_budget is not None else None
        if refused:
            line = located.line_of(where + ("input",) if "input" in raw else ("defaults", "input"))
            problems.append(Problem(file, line, "input", refused))
            spec = None
        if spec is not None:
            out.append(spec)
    if problems:
        raise ProblemsError(problems)
    return out


def _claim(raw: dict, defaults: dict, where: tuple, file: str, located: Located,
           problems: list[Problem]) -> Optional[ClaimSpec]:
    def line_of(path: tuple) -> int:
        if path and path[0] in defaults and path[0] not in raw:
            return located.line_of(("defaults",) + path)
        return located.line_of(where + path)

    try:
        claim = model.Claim.model_validate({**defaults, **raw})
    except ValidationError as exc:
        problems += pydantic_problems(exc, file, line_of, set(model.Claim.model_fields))
        return None
    if claim.op not in ops.OPS:
        problems.append(Problem(file, line_of(("op",)), "op", f"unknown operator {claim.op!r}; known: "
                                                              f"{', '.join(ops.OPS)}"))
        return None
    found = [Problem(file, line_of(("sides", side)), f"sides.{side}",
                     f"unknown surface {side!r}; known: {', '.join(registry())}")
             for side in claim.sides if side not in registry()]
    found += [Problem(file, line_of(("sweep",) + path), "sweep", message)
              for path, message in model.sweep_problems(claim.sweep)]
    found += _data_problems(claim, file, line_of)
    if found:
        problems += found
        return None
    spec = ClaimSpec(claim, file, located.line_of(where))
    for variables, point_path in model.points(claim.sweep):
        point = _point(spec, variables, point_path, line_of, problems)
        if point is None:
            return None     # one point's problems are usually every point's: say them once
        spec.points.append(point)
    return spec


def _data_problems(claim: model.Claim, file: str, line_of) -> list[Problem]:
    try:
        data_model(claim.op).model_validate(claim.data)
    except ValidationError as exc:
        return [Problem(p.file, p.line, "data." + p.field, p.message)
                for p in pydantic_problems(exc, file, lambda path: line_of(("data",) + tuple(path)), set())]
    return []


def _point(spec: ClaimSpec, variables: dict, point_path: tuple, line_of, problems: list[Problem]) -> Optional[Point]:
    claim, file = spec.claim, spec.file
    suffix = model.label(variables)
    point_id = claim.id + suffix
    point_line = line_of(("sweep",) + point_path) if variables else spec.line
    if suffix and (len(point_id) > ID_MAX or not re.match(ID_PATTERN, point_id)):
        problems.append(Problem(file, point_line, "sweep", f"the point id {point_id[:60]!r} is not a valid id "
                                                          "(letters, digits and _.,=:+-[] only; sweep free text "
                                                          "in separate claims)"))
        return None
    errors: list[tuple[tuple, str]] = []
    shape = model.substitute(claim.input, variables, ("input",), errors)
    sides = {name: model.substitute(native, variables, ("sides", name), errors)
             for name, native in claim.sides.items()}
    if not errors and not all(isinstance(v, int) and v >= 1 for v in shape):
        errors.append((("input",), f"the input {shape} must be 4 positive integers (N, C, H, W)"))
    for path, message in errors:
        problems.append(Problem(file, line_of(path), _dotted(path), f"{message}{_at(suffix)}"))
    if errors:
        return None
    point = Point(point_id, variables, shape, [], point_line)
    for name, native in sides.items():
        side = _side(spec, point, name, native, line_of, problems)
        if side is None:
            return None
        point.sides.append(side)
    return point


def _side(spec: ClaimSpec, point: Point, name: str, native: dict, line_of,
          problems: list[Problem]) -> Optional[Side]:
    """One side's canonical meaning at ``point`` (a problem, and None, when it has none)."""
    claim, file = spec.claim, spec.file
    cls = backend_class(name)
    where = ("sides", name)
    at = _at(model.label(point.variables))
    if not hasattr(cls, "from_native"):
        problems.append(Problem(file, line_of(where), f"sides.{name}", f"{name} cannot read native parameters "
                                                                      "(its adapter has no from_native)"))
        return None
    try:
        fields = canonical_fields(cls, claim.op, native, point.input)
    except NativeParamError as exc:
        problems.append(Problem(file, line_of(where + (exc.param,)), f"sides.{name}.{exc.param}",
                                f"{exc.message}{at}"))
        return None
    except (ValueError, TypeError) as exc:
        problems.append(Problem(file, line_of(where), f"sides.{name}", f"{exc}{at}"))
        return None
    case = side_case(spec, point, name, fields)
    if isinstance(case, str):
        problems.append(Problem(file, line_of(where), f"sides.{name}", f"its canonical meaning {fields} is not a "
                                                                      f"valid case: {case}{at}"))
        return None
    side = Side(name, native, case, line_of(where))
    refused = posed_differently(cls, claim.op, side)
    if refused:
        problems.append(Problem(file, line_of(where), f"sides.{name}", f"{refused}{at}"))
        return None
    return side


def over_budget(side: str, case: Case, budget: Budget) -> Optional[str]:
    """Why ``case`` (the call of ``side``) is over the memory budget, as the case loader says it (None: within)."""
    need = budget.need(ops.get(case.op), case.params, case.dtype)
    if need <= budget.limit:
        return None
    return (f"the {side} side needs ~{need / GIB:.3g} GiB, the budget is {budget.limit / GIB:.3g} GiB "
            "(--max-memory)")


def _over_budget(spec: ClaimSpec, budget: Budget) -> Optional[str]:
    """The first point's side over the budget (usually every point's: said once)."""
    for point in spec.points:
        for side in point.sides:
            refused = over_budget(side.backend, side.case, budget)
            if refused:
                return refused + _at(model.label(point.variables))
    return None


def canonical_fields(cls, op: str, native: dict, nchw: list[int]) -> dict:
    """``from_native`` with the input in the side's own layout, which only its answer tells: asked in NCHW
    first, and again in NHWC when the side's canonical meaning says it takes NHWC (``nchw``: the input,
    canonical NCHW; ``conform translate`` asks it too). When neither reading works, the error is the one of
    the layout the call declares (its ``data_format``/``layout``), or both when it declares none."""
    n, c, h, w = nchw
    try:
        fields = cls.from_native(op, dict(native), [n, c, h, w])
    except NativeParamError as as_nchw:
        try:   # an NHWC-only surface may refuse an NCHW shape outright (its channels are the last axis)
            fields = cls.from_native(op, dict(native), [n, h, w, c])
        except NativeParamError as as_nhwc:
            raise _declared_error(cls, op, native, as_nchw, as_nhwc) from None
        if fields.get("layout") != "NHWC":
            raise as_nchw from None
        return fields
    if fields.get("layout") == "NHWC":
        fields = cls.from_native(op, dict(native), [n, h, w, c])
    return fields


_LAYOUT_WORDS = {"NCHW": "NCHW", "channels_first": "NCHW", "NHWC": "NHWC", "channels_last": "NHWC"}


def _declared_error(cls, op: str, native: dict, as_nchw: NativeParamError,
                    as_nhwc: NativeParamError) -> NativeParamError:
    """The error of the reading in the layout the call declares; both, saying which is which, otherwise."""
    if str(as_nchw) == str(as_nhwc):
        return as_nchw
    try:
        normal = cls.native_inverse(op).normalise(dict(native))
    except (NativeParamError, ValueError, TypeError):
        normal = {}
    declared = next((_LAYOUT_WORDS[v] for k, v in normal.items()
                     if k in ("data_format", "layout") and isinstance(v, str) and v in _LAYOUT_WORDS), None)
    if declared is not None:
        return as_nhwc if declared == "NHWC" else as_nchw
    return NativeParamError(as_nchw.param, f"{as_nchw.message} (the input read as NCHW; read as NHWC: "
                                           f"{as_nhwc.param}: {as_nhwc.message})")


def side_case(spec: ClaimSpec, point: Point, side: str, fields: dict):
    """The side's canonical meaning as a ``Case`` (input in its layout); a message when it is not one (also
    how ``conform translate`` builds the sides of its in-memory claim)."""
    op = ops.get(spec.claim.op)
    n, c, h, w = point.input
    layout = fields.get("layout", "NCHW")
    op_raw = {**fields, "input": [n, h, w, c] if layout == "NHWC" else [n, c, h, w]}
    common_raw = {"id": f"{point.id}:{side}"[:ID_MAX], "source": spec.claim.source, "dtype": spec.claim.dtype,
                  "data": spec.claim.data,
                  "tolerance": spec.claim.tolerance.model_dump() if spec.claim.tolerance else None}
    try:
        common = fields_model(op.name).model_validate({k: v for k, v in common_raw.items() if v is not None})
        params = op.Params.model_validate(op_raw)
    except ValidationError as exc:
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    case = Case(id=common.id, op=op.name, file=spec.file, line=spec.line, common=common, params=params,
                raw_params=op_raw)
    try:
        case.resolved = op.resolve(params)
    except ops.InvalidCall as exc:      # this side means a call the semantics rejects: it should raise
        case.invalid_reason = exc.reason
        case.common = case.common.model_copy(update={"expect": Expect(error=True)})
    return case


def side_call(side: Side, arrays: Optional[dict[str, np.ndarray]] = None) -> Call:
    """The call a side's worker gets; without ``arrays``, shape-only stand-ins (for describing the Program)."""
    case, op = side.case, ops.get(side.case.op)
    if arrays is None:
        arrays = {name: np.broadcast_to(np.zeros((), np.float64), shape)
                  for name, shape in op.shapes(case.params).items()}
    return Call(op=case.op, case_id=case.id, params=case.canonical_params(),
                resolved=case.resolved.as_dict() if case.resolved is not None else None, dtype=case.dtype,
                arrays=arrays, expects_error=case.expects_error)


def posed_differently(cls, op: str, side: Side) -> Optional[str]:
    """Why the adapter's Program would not pose the claim's native parameters (None: it poses them).

    A native parameter counts as posed when the adapter passes the same value, or another spelling of it
    (``1`` for ``[1, 1, 1, 1]``): putting the adapter's value in the claim's place changes no canonical
    field. A value the adapter passes that the claim leaves out is fine when it is the default (adding it
    changes nothing either)."""
    call = side_call(side)
    program = cls.describe(call)
    if program is None:
        return None      # a call the semantics rejects, or an adapter that cannot say: nothing to compare
    posed = cls.to_native(op, program, {name: tuple(array.shape) for name, array in call.arrays.items()})
    claimed = cls.native_inverse(op).normalise(dict(side.native))   # pad_list=(1, 0, 1, 0) as the pad it means
    meaning = _meaning(cls, op, claimed, side)
    for key in sorted(set(posed) | set(claimed), key=str):
        if key in claimed and key in posed and _same(claimed[key], posed[key]):
            continue
        trial = {**claimed, key: posed[key]} if key in posed else {k: v for k, v in claimed.items() if k != key}
        if _meaning(cls, op, trial, side) != meaning:
            said = f"{key}={claimed[key]!r}" if key in claimed else f"no {key}"
            does = f"{key}={posed[key]!r}" if key in posed else f"no {key}"
            notes = f" ({'; '.join(program.notes)})" if program.notes else ""
            return (f"conform's {side.backend} adapter would not make this call natively: the claim says {said}, "
                    f"the adapter passes {does}{notes}; a claim is checked only on the native call it states")
    return None


def _meaning(cls, op: str, native: dict, side: Side) -> Optional[dict]:
    shape = side.case.params.model_dump()["input"]
    try:
        return cls.from_native(op, dict(native), list(shape))
    except (ValueError, TypeError):
        return None


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _at(suffix: str) -> str:
    return f" (at sweep point {suffix})" if suffix else ""
