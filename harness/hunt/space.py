"""An operator's parameter space as the hunt walks it: random calls, mutations, simpler variants, a size.

Everything here works from the ``OpSpec`` alone (Note [Operators]): random
valid calls come from the operator's own fuzz strategy (``OpSpec.fuzz``, the
one ``conform fuzz`` and ``make quiet`` use); mutations and simplifications
are read off the ``Params`` model (each field's type, its ``Literal`` options,
its default). A call is a dict of case fields in canonical form (``settle``):
every operator field, ``dtype``, ``data``, and ``expect: {error: true}`` when
the canonical semantics rejects it, so an invalid call is judged as an error
case (a backend that accepts it is ``missing_error``). The one thing assumed
beyond the spec is what ``harness.ops.fields`` gives every 2-D operator: an
``input`` in ``layout`` order, so a move of ``layout`` permutes ``input``.
"""

from __future__ import annotations

import functools
import json
import math
import random
import typing
from typing import Any, Optional

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from harness import ops
from harness.cases import data_model
from harness.data import DTYPES

#: Fills from simplest to most general (a shrink moves a fill left); each costs its index.
FILL_ORDER = ("ones", "arange", "impulse", "uniform", "normal")
#: Calls larger than this are not posed (the hunt wants small, fast cases).
MAX_DIM = 40
MAX_PARENT_BYTES = 64 << 20


def key(fields: dict) -> str:
    """A call's identity (the journal compares calls by it)."""
    return json.dumps(fields, sort_keys=True)


@functools.cache
def _literals(op: str, name: str) -> tuple:
    """The ``Literal`` options a ``Params`` field's type admits (strings), in declaration order."""
    found: list = []

    def walk(tp):
        if typing.get_origin(tp) is typing.Literal:
            found.extend(a for a in typing.get_args(tp) if isinstance(a, str))
        for arg in typing.get_args(tp):
            walk(arg)
    walk(ops.get(op).Params.model_fields[name].annotation)
    return tuple(dict.fromkeys(found))


def _admits_list(op: str, name: str) -> bool:
    return "list" in str(ops.get(op).Params.model_fields[name].annotation)


def _admits_int(op: str, name: str) -> bool:
    """Whether the field's type takes a bare int (a pair or a padding written as one number)."""
    tp = ops.get(op).Params.model_fields[name].annotation
    return tp is int or (typing.get_origin(tp) is typing.Union and int in typing.get_args(tp))


def _required(op: str) -> list[str]:
    return [n for n, f in ops.get(op).Params.model_fields.items() if f.default is PydanticUndefined]


def defaults(op: str, fields: dict) -> dict:
    """The canonical value of every operator field left at its default (the required ones as in ``fields``)."""
    spec = ops.get(op)
    return spec.Params.model_validate({n: fields[n] for n in _required(op)}).model_dump()


def settle(op: str, fields: dict) -> Optional[dict]:
    """``fields`` in canonical form, with ``expect: {error: true}`` when the semantics rejects the call;
    None when the case model refuses them (a field out of its range) or the call is too large to hunt with."""
    spec = ops.get(op)
    try:
        params = spec.Params.model_validate({n: fields[n] for n in spec.Params.model_fields if n in fields})
        data = data_model(op).model_validate(fields.get("data") or {}).model_dump()
    except ValidationError:
        return None
    canonical = params.model_dump()
    if any(v > MAX_DIM for v in _ints(canonical)) or spec.footprint(params, "float64", 1)[0] > MAX_PARENT_BYTES:
        return None
    out = {**canonical, "dtype": fields.get("dtype", "float32"), "data": data}
    try:
        spec.resolve(params)
    except ops.InvalidCall:
        out["expect"] = {"error": True}
    return out


def _ints(value: Any):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _ints(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _ints(v)


def cost(op: str, fields: dict) -> float:
    """How large a call is, for the shrinker (smaller is simpler): operand elements first (not the output's:
    a smaller crop is simpler and gives more rows),
    then every field away from its default, the dtype (float32 is simplest), fills and seed, and, as
    a tie-break, the sum of every number in the call."""
    spec = ops.get(op)
    params = spec.Params.model_validate({n: fields[n] for n in spec.Params.model_fields})
    elements = sum(math.prod(shape) for shape in spec.shapes(params).values())
    base = defaults(op, fields)
    away = sum(fields[n] != v for n, v in base.items())
    data = fields["data"]
    fills = sum(FILL_ORDER.index(f) for n, f in data.items() if n != "seed" and f in FILL_ORDER)
    return (elements + 2 * away + (fields["dtype"] != "float32") + 0.5 * fills + 0.1 * (data.get("seed") != 0)
            + 0.05 * sum(_ints({n: fields[n] for n in base})))


def with_layout(fields: dict, layout: str) -> dict:
    """The same call in another layout (``input`` permuted, as every 2-D operator reads it)."""
    if fields.get("layout") == layout or "input" not in fields:
        return dict(fields)
    n, a, b, c = fields["input"]
    shape = [n, b, c, a] if layout == "NHWC" else [n, c, a, b]
    return {**fields, "layout": layout, "input": shape}


# ---------------------------------------------------------------- random calls (exploration, probes)

def explore(op: str, seed: int, index: int) -> dict:
    """Call ``index`` of the hunt's stream for ``seed``: a random valid call from the operator's fuzz strategy,
    mutated (one or two fields) in 40 % of the draws, which gives the padding forms and rules the strategy does
    not draw and invalid calls. Deterministic: the same seed and index give the same call."""
    rng = random.Random(f"hunt:{op}:{seed}:{index}")
    spec = ops.get(op)
    base = spec.fuzz(rng, "h", DTYPES)
    base.pop("id", None)
    settled = settle(op, base)
    if settled is None or rng.random() >= 0.4:
        return settled or explore(op, seed, index + 1_000_000_007)
    for _ in range(8):
        mutated = mutate(op, settled, rng, rng.choice((1, 1, 2)))
        if mutated is not None:
            return mutated
    return settled


def mutate(op: str, fields: dict, rng: random.Random, times: int = 1) -> Optional[dict]:
    """``fields`` with ``times`` random fields changed (anywhere in their range: larger, smaller, another
    padding form or rule, an output_shape); None when no posable call came out."""
    spec = ops.get(op)
    names = [n for n in spec.Params.model_fields] + ["dtype"]
    out = dict(fields)
    out.pop("expect", None)
    for _ in range(times):
        name = rng.choice(names)
        out = _mutate_field(op, out, name, rng)
    return settle(op, out)


def mutate_each(op: str, fields: dict, rng: random.Random) -> list[dict]:
    """One random mutation of every field (and the dtype), and each operand's fill changed to another (a
    divergence that shows only where the data reaches some rows passes with an impulse): the posable ones."""
    base = {k: v for k, v in fields.items() if k != "expect"}
    mutants = [_mutate_field(op, base, name, rng) for name in [*ops.get(op).Params.model_fields, "dtype"]]
    data = base["data"]
    for operand, fill in data.items():
        if operand != "seed" and fill in FILL_ORDER:
            other = rng.choice([f for f in FILL_ORDER if f != fill])
            mutants.append({**base, "data": {**data, operand: other}})
    return [m for m in (settle(op, m) for m in mutants) if m is not None]


def _bump(value: int, rng: random.Random) -> int:
    return rng.choice([value + 1, value + 2, 2 * value + 1, max(0, value - 1), 0, 1])


def _mutate_field(op: str, fields: dict, name: str, rng: random.Random) -> dict:
    value = fields.get(name)
    if name == "dtype":
        return {**fields, "dtype": rng.choice(list(DTYPES))}
    if name == "layout":
        return with_layout(fields, rng.choice(_literals(op, name)))
    literals = _literals(op, name)
    if isinstance(value, bool):
        new: Any = not value
    elif isinstance(value, int):
        new = _bump(value, rng)
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        new = list(value)
        i = rng.randrange(len(new))
        new[i] = _bump(new[i], rng)
        if rng.random() < 0.3:
            new = [new[i]] * len(new)
    elif value is None and _admits_list(op, name):
        size = ops.get(op).Params.model_fields[name].metadata
        length = next((m.min_length for m in size if hasattr(m, "min_length")), 2)
        new = [rng.randint(1, 16) for _ in range(length)]
    elif isinstance(value, str) or literals:
        new = rng.choice([*literals, 0, 1]) if literals else value
    else:
        new = value
    return {**fields, name: new}


# ---------------------------------------------------------------- simpler variants (the shrinker's moves)

def _smaller(value: int, floor: int) -> list[int]:
    """The floor and one step toward it: half-way while far, one less when close (a binary search)."""
    step = value // 2 if value - floor > 3 else value - 1
    return sorted({floor, step} & set(range(floor, value)))


def shrink_moves(op: str, fields: dict) -> list[dict]:
    """Every one-field simplification of ``fields`` that is posable and smaller (``cost``), smallest first:
    a field to its default, a number (or one axis of it) toward its default or 1 (halved, minus one),
    a padding form to another, ``output_shape`` dropped, the layout to the first (NCHW), the dtype to
    float32, a fill to ``ones`` or ``arange``, the seed to 0."""
    spec = ops.get(op)
    required = _required(op)
    base = {n: v for n, v in defaults(op, fields).items() if n not in required}
    current = cost(op, fields)
    raw: list[dict] = []
    for name in spec.Params.model_fields:
        value, default = fields[name], base.get(name, PydanticUndefined)
        if name == "layout":
            first = _literals(op, name)[0]
            if value != first:
                raw.append(with_layout(fields, first))
            continue
        if default is not PydanticUndefined and value != default:
            raw.append({**fields, name: default})
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            floor = default if isinstance(default, int) and not isinstance(default, bool) else 1
            raw += [{**fields, name: v} for v in _smaller(value, floor)]
        elif isinstance(value, list) and all(isinstance(v, int) for v in value):
            floors = default if isinstance(default, list) else [1] * len(value)
            for i, v in enumerate(value):
                for smaller in _smaller(v, floors[i] if i < len(floors) else 1):
                    raw.append({**fields, name: value[:i] + [smaller] + value[i + 1:]})
            if len(set(value)) > 1:
                raw.append({**fields, name: [min(value)] * len(value)})
        if isinstance(value, str) or (_literals(op, name) and name != "layout"):
            raw += [{**fields, name: option} for option in _literals(op, name) if option != value]
    if fields["dtype"] != "float32":
        raw.append({**fields, "dtype": "float32"})
    data = fields["data"]
    for operand, fill in data.items():
        if operand != "seed" and fill in FILL_ORDER:
            raw += [{**fields, "data": {**data, operand: f}} for f in FILL_ORDER[:min(2, FILL_ORDER.index(fill))]]
    if data.get("seed"):
        raw.append({**fields, "data": {**data, "seed": 0}})
    seen, moves = set(), []
    for candidate in raw:
        settled = settle(op, candidate)
        if settled is None or key(settled) in seen:
            continue
        seen.add(key(settled))
        size = cost(op, settled)
        if size < current:
            moves.append((size, settled))
    moves.sort(key=lambda m: (m[0], key(m[1])))
    return [m for _, m in moves]


def combine(op: str, fields: dict, moves: list[dict]) -> Optional[dict]:
    """``fields`` with every field that ``moves`` changed taken from them (for a field several moves changed,
    the smallest move's value): the shrinker tries all its successful one-field moves of a round at once."""
    out, taken = dict(fields), set()
    for move in sorted(moves, key=lambda m: (cost(op, m), key(m))):
        for name, value in move.items():
            if name != "expect" and value != fields.get(name) and name not in taken:
                taken.add(name)
                out[name] = value
                if name == "layout":
                    out["input"] = move["input"]
    out.pop("expect", None)
    settled = settle(op, out)
    return settled if settled is not None and cost(op, settled) < cost(op, fields) else None


def readable(op: str, fields: dict) -> dict:
    """The call as a person writes it: fields at their default left out, equal pairs as one number."""
    base = defaults(op, fields)
    out = {}
    for name, value in fields.items():
        if name in base and value == base[name] and name not in _required(op):
            continue
        if isinstance(value, list) and len(set(map(repr, value))) == 1 and name in base and _admits_int(op, name):
            value = value[0]
        out[name] = value
    data = {k: v for k, v in fields["data"].items() if v is not None}
    out["data"] = data
    return out
