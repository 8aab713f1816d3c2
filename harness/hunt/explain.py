"""What a failure is (its kind) and which conditions separate it from its passing neighbours.

A shrunk failure becomes a group through the registry's own language
(``harness.conditions``): the conditions are atoms ``name: condition`` on
the values a registry entry may test (the call's canonical parameters,
``dtype`` and the operator's ``DERIVED`` values), chosen so that every
failing call of the shrink chain satisfies all of them and as many observed
passing calls of the same backend as possible satisfy at least one *not*
(Note [Hunting] in ``harness/hunt/__init__.py`` says why this is a greedy set cover).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from harness import conditions, ops
from harness.divergences import Entry, Selector, condition_names

#: Atom weights: a derived boolean or label explains more than a raw number; an exact list explains least.
_WEIGHT = {"flag": 1.0, "label": 0.95, "oneof": 0.85, "order": 0.8, "axis": 0.75, "number": 0.6, "list": 0.4}
#: Every entry keeps this derived value when the operator has it: a divergence on calls the semantics
#: accepts and one on calls it rejects are different findings even when nothing observed separates them.
ANCHOR = "valid_call"


def failure_kind(record: dict, op: Optional[str] = None) -> str:
    """What kind of failure a result is, beyond its verdict, so the shrinker keeps *this* failure: for a shape
    mismatch the axes that are too large or too small (canonical NCHW order), for a value mismatch whether the
    worst element is non-finite, zero or another wrong value, for an unexpected error the exception type (or
    ``adapter``: a conform bug, never the framework's answer), for a missing error the field the canonical
    semantics blames (``InvalidCall.field``: crops that remove the output and groups that do not divide
    the channels are different rules a backend fails to check)."""
    verdict = record["verdict"]
    if verdict == "shape_mismatch":
        actual, expected = record.get("actual_shape") or [], record.get("expected_shape") or []
        if len(actual) != len(expected):
            return "rank"
        if (record.get("params") or {}).get("layout") == "NHWC" and len(actual) == 4:
            actual, expected = [actual[i] for i in (0, 3, 1, 2)], [expected[i] for i in (0, 3, 1, 2)]
        # Which way the spatial axes are off, whichever axis (the same rule often shows on either axis),
        # and whether batch or channels are off too.
        signs = "".join(sorted({"+" if a > e else "-" for a, e in zip(actual[2:], expected[2:]) if a != e}))
        return signs + ("nc" if actual[:2] != expected[:2] else "")
    if verdict == "value_mismatch":
        metrics = record.get("metrics") or {}
        if metrics.get("nonfinite_mismatches"):
            return "nonfinite"
        return "zero" if metrics.get("worst_actual") == 0 else "wrong"
    if verdict == "missing_error" and op is not None:
        return _blamed(op, record.get("params") or {})
    if verdict == "unexpected_error":
        if str(record.get("reason", "")).startswith("adapter error"):
            return "adapter"
        return str((record.get("error") or {}).get("type") or "")
    return ""


def _blamed(op: str, fields: dict) -> str:
    spec = ops.get(op)
    try:
        spec.resolve(spec.Params.model_validate({n: fields[n] for n in spec.Params.model_fields if n in fields}))
    except ops.InvalidCall as exc:
        return exc.field
    except ValueError:
        pass
    return ""


def values_of(op: str, fields: dict) -> dict:
    """The values a registry condition tests for a call (``harness.divergences.case_values``'s, from fields)."""
    spec = ops.get(op)
    params = {n: fields[n] for n in spec.Params.model_fields}
    return {**params, "dtype": fields["dtype"], **spec.derived(params, fields["data"])}


@dataclass(frozen=True)
class Atom:
    name: str
    condition: Any
    weight: float
    compiled: conditions.Conditions

    def holds(self, values: dict) -> bool:
        return self.compiled.holds(values)

    def as_yaml(self) -> dict:
        return {self.name: self.condition}


def _compile(op: str, name: str, condition: Any) -> Optional[conditions.Conditions]:
    compiled, problems = conditions.parse({name: condition}, condition_names(op), ())
    return None if problems else compiled


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _candidates(vals: list) -> list[tuple[Any, str]]:
    """Conditions on one name that might hold for every positive (checked by the caller)."""
    out: list[tuple[Any, str]] = []
    if all(_scalar(v) for v in vals):
        kinds = {type(v) for v in vals}
        if len(set(map(repr, vals))) == 1:
            v = vals[0]
            out.append((v, "flag" if isinstance(v, bool) else "label" if isinstance(v, str) or v is None
                        else "number"))
        elif kinds <= {str, bool, type(None)} and len(set(map(repr, vals))) <= 3:
            out.append((sorted(set(vals), key=repr), "oneof"))
        numbers = [v for v in vals if isinstance(v, int) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(vals):
            out += [({"ge": min(numbers)}, "order"), ({"le": max(numbers)}, "order")]
            if min(numbers) > 0:
                out.append(({"gt": 0}, "order"))
        return out
    if not all(isinstance(v, list) and all(_scalar(x) for x in v) for v in vals):
        return out
    if len(set(map(repr, vals))) == 1:
        out.append(({"eq": vals[0]}, "list"))
    distinct = list({repr(x): x for v in vals for x in v}.values())   # by repr: True and 1 stay apart
    inner: list[Any] = list(distinct)
    numbers = sorted({x for x in distinct if isinstance(x, int) and not isinstance(x, bool)})
    for m in numbers:
        inner += [{"ge": m}, {"le": m}]
    if numbers and numbers[0] > 0:
        inner.append({"gt": 0})
    if 1 < len(distinct) <= 3:
        inner.append({"in": distinct})
    for c in inner:
        out += [({"any": c}, "axis"), ({"all": c}, "axis")]
    return out


def atoms(op: str, positives: list[dict]) -> list[Atom]:
    """Every atom that holds for all ``positives`` (condition values), derived names first; atoms on the same
    name are combined into one mapping of operators (``out_size: {any: 0, all: {ge: 0}}``) by ``when_of``."""
    spec = ops.get(op)
    names = [*spec.DERIVED, *spec.Params.model_fields, "dtype"]
    found = []
    for name in names:
        vals = [p.get(name) for p in positives]
        for condition, kind in _candidates(vals):
            compiled = _compile(op, name, condition)
            if compiled is None or not all(compiled.holds(p) for p in positives):
                continue
            weight = _WEIGHT[kind] * (1.0 if name in spec.DERIVED else 0.9 if name != "dtype" else 0.7)
            found.append(Atom(name, condition, weight, compiled))
    return found


#: Only these atoms are added to exclude failures of other verdicts (a derived flag or label: a raw number
#: fitted to a few other failures would narrow the entry for nothing).
OTHER_MIN_WEIGHT = 0.95


def separate(op: str, positives: list[dict], passing: list[dict], other: list[dict]) -> tuple[list[Atom], int]:
    """Atoms true for every positive that exclude the ``passing`` neighbours, by greedy weighted set cover,
    then, with derived flags and labels only, the ``other`` failures of the backend (other verdicts); every
    atom whose removal excludes nothing less is dropped. Returns the atoms and how many passing neighbours
    none excludes."""
    candidates = atoms(op, positives)
    negatives = passing + other
    excluded = [frozenset(j for j, v in enumerate(negatives) if not a.holds(v)) for a in candidates]
    chosen: list[int] = []
    remaining = set(range(len(passing)))
    for targets, floor in ((set(range(len(passing))), 0.0),
                           (set(range(len(passing), len(negatives))), OTHER_MIN_WEIGHT)):
        left = targets - set().union(*(excluded[c] for c in chosen))
        while left:
            scores = [a.weight ** 4 * len(ex & left) if a.weight >= floor and _combines(
                [candidates[c] for c in chosen] + [a]) else 0.0 for a, ex in zip(candidates, excluded)]
            best = max(range(len(candidates)), key=lambda i: (scores[i], -i), default=None)
            if best is None or scores[best] == 0:
                break
            chosen.append(best)
            left -= excluded[best]
        if floor == 0.0:
            remaining = left
    covered = set().union(*(excluded[i] for i in chosen))
    for i in list(reversed(chosen)):
        rest = [c for c in chosen if c != i]
        if set().union(*(excluded[c] for c in rest)) >= covered:
            chosen = rest
    anchor = next((i for i, a in enumerate(candidates) if a.name == ANCHOR and isinstance(a.condition, bool)), None)
    if anchor is not None and anchor not in chosen:
        chosen.insert(0, anchor)
    picked = [candidates[i] for i in sorted(chosen, key=lambda i: (candidates[i].name != ANCHOR, i))]
    return picked, len(remaining)


def _as_test(condition: Any) -> dict:
    """A condition as a mapping of operators (a value is ``eq``, a list of values ``in``)."""
    if isinstance(condition, dict):
        return dict(condition)
    return {"in": condition} if isinstance(condition, list) else {"eq": condition}


def _combines(picked: list[Atom]) -> bool:
    """Whether the atoms can be one ``when`` (atoms on one name need different operators)."""
    seen: dict[str, set] = {}
    for a in picked:
        ops_ = set(_as_test(a.condition))
        if ops_ & seen.get(a.name, set()):
            return False
        seen.setdefault(a.name, set()).update(ops_)
    return True


def when_of(picked: list[Atom]) -> dict:
    """The ``when`` mapping of the atoms, those on one name merged into one mapping of operators."""
    when: dict[str, Any] = {}
    for a in picked:
        when[a.name] = {**_as_test(when[a.name]), **_as_test(a.condition)} if a.name in when else a.condition
    return when


def _slug(atom: Atom) -> str:
    if atom.condition is True:
        return atom.name
    if atom.condition is False:
        return "not-" + atom.name
    text = re.sub(r"[^A-Za-z0-9]+", "", json.dumps(atom.condition))
    return f"{atom.name}-{text[:14]}"


def signature(backend: str, verdict: str, picked: list[Atom]) -> str:
    """The group's name and file stem: backend, verdict, the conditions (shortened) and a hash of all of them."""
    digest = hashlib.sha256(json.dumps([backend, verdict, when_of(picked)], sort_keys=True).encode()).hexdigest()
    words = "-".join(_slug(a) for a in picked if a.name != ANCHOR)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{backend}-{verdict}-{words}".strip("-"))[:90].rstrip("-.")
    return f"{stem}-{digest[:6]}"


def in_words(picked: list[Atom]) -> str:
    """The conditions in the registry's notation, compact: ``padding_form: valid, kernel_below_stride: true``."""
    return ", ".join(f"{name}: {_flow(value)}" for name, value in when_of(picked).items())


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return "null" if value is None else json.dumps(value) if isinstance(value, bool) else str(value)


def glossary(op: str, picked: list[Atom]) -> list[str]:
    """What each derived name the conditions use means (the operator's ``DERIVED``)."""
    meaning = ops.get(op).DERIVED
    return [f"`{name}`: {meaning[name]}" for name in dict.fromkeys(a.name for a in picked) if name in meaning]


def entry(op: str, backend: str, verdict: str, picked: list[Atom], sig: str, reason: str) -> dict:
    """The proposed registry entry (a mapping ``divergences:`` takes); its id needs a real number."""
    return {"id": f"F99-hunt-{sig}", "op": op, "backend": backend, "when": when_of(picked),
            "verdict": verdict, "reason": reason, "link": f"{sig}.md"}


def selector(raw: dict) -> Selector:
    """A proposed entry compiled as the registry compiles one (so the hunt classifies with it)."""
    compiled, problems = conditions.parse(raw["when"], condition_names(raw["op"]), ("when",))
    if problems:
        raise ValueError(f"proposed entry {raw['id']}: {problems}")
    return Selector(Entry.model_validate(raw), compiled)
