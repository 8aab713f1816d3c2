"""All-pairs (pairwise) cases for an operator, generated and kept in the repo.

``python -m harness.pairwise OP > cases/OP/pairwise.yaml`` writes the file;
``python -m harness.pairwise OP --check cases/OP/pairwise.yaml`` exits 1 if
the file is not what the generator gives (the test suite runs it).

Factors and levels are the operator's coverage dimensions
(``OpSpec.coverage.required``). A row of levels becomes a concrete case
through the operator's ``concrete``. Which rows are valid is decided by the
canonical semantics itself (``OpSpec.resolve``): a pair no valid row contains
is reported by ``explain_uncovered`` with the semantics' own reason, never
generated.

The generator is a small deterministic greedy (AETG-style) covering-array
builder: each new row starts from one still-uncovered pair and fills the
other factors one by one with the level that covers most still-uncovered
pairs, keeping only levels for which a valid completion exists; of a few
such candidate rows the one covering most new pairs is kept. Which pairs a
row covers is measured by the operator's ``classify`` on the concrete case,
the same function ``conform coverage`` uses. Ids name the concrete values, so
they do not depend on the order rows were found in.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

from harness import ops
from harness.ops.spec import InvalidCall, OpSpec

CANDIDATE_SEEDS = 24


def pairs_of(levels: dict[str, set[str]], parameters: list[str]) -> Iterable[tuple]:
    """Every ((param_a, value_a), (param_b, value_b)) a classified case covers, a before b."""
    for a, b in itertools.combinations(parameters, 2):
        for va in levels[a]:
            for vb in levels[b]:
                yield (a, va), (b, vb)


def required_pairs(required: dict[str, list[str]]) -> list[tuple]:
    return [((a, va), (b, vb)) for a, b in itertools.combinations(list(required), 2)
            for va in required[a] for vb in required[b]]


def operator_fields(fields: dict) -> dict:
    """A concrete row's case fields without the common ones (``dtype``, ``data``)."""
    return {k: v for k, v in fields.items() if k not in ("dtype", "data")}


class Space:
    """Every combination of the key factors' levels as one bit; a set of combinations is an int bitmask."""

    def __init__(self, gen: "Pairwise"):
        cov = gen.spec.coverage
        self.keys = list(itertools.product(*(cov.required[f] for f in cov.key)))
        self.level = {}
        for f_index, factor in enumerate(cov.key):
            for level in cov.required[factor]:
                self.level[(factor, level)] = sum(1 << i for i, k in enumerate(self.keys) if k[f_index] == level)
        self.all = (1 << len(self.keys)) - 1
        self.valid = sum(1 << i for i, k in enumerate(self.keys) if gen.semantics_verdict(k) is None)
        self.runnable = {b: self.valid & sum(1 << i for i, k in enumerate(self.keys) if can(dict(zip(cov.key, k))))
                         for b, can in cov.capabilities.items()}
        self.key = cov.key

    def restrict(self, partial: dict[str, str], mask: int) -> int:
        for factor, level in partial.items():
            if factor in self.key:
                mask &= self.level[(factor, level)]
        return mask

    def feasible(self, partial: dict[str, str], mask: Optional[int] = None) -> bool:
        return self.restrict(partial, self.valid if mask is None else mask) != 0


class Pairwise:
    """The pairwise generator for one operator (``for_op``)."""

    def __init__(self, spec: OpSpec):
        self.spec = spec
        self.required = spec.coverage.required
        self.parameters = list(self.required)
        self.semantics_verdict = functools.lru_cache(maxsize=None)(self._semantics_verdict)

    def concrete(self, row: dict[str, str]) -> dict:
        return self.spec.coverage.concrete(row)

    def case_id_of(self, fields: dict) -> str:
        return self.spec.coverage.case_id(fields)

    def required_pairs(self) -> list[tuple]:
        return required_pairs(self.required)

    def _semantics_verdict(self, key: tuple) -> Optional[str]:
        """None if the call with these levels of the key factors is valid, else the semantics' reason."""
        row = self.spec.coverage.default_row | dict(zip(self.spec.coverage.key, key))
        try:
            self.spec.resolve(self.spec.Params.model_validate(operator_fields(self.concrete(row))))
        except InvalidCall as exc:
            return exc.reason
        return None

    @functools.cached_property
    def space(self) -> Space:
        return Space(self)

    def feasible(self, partial: dict[str, str], mask: Optional[int] = None) -> bool:
        """Whether some valid row (within ``mask``, default: every valid row) has these levels."""
        return self.space.feasible(partial, mask)

    def explain_uncovered(self, pair: tuple) -> str:
        """Why a required pair is not in a suite: the semantics' reason, or 'feasible but missing'."""
        (a, va), (b, vb) = pair
        partial = {a: va, b: vb}
        if self.feasible(partial):
            return (f"feasible but not in the suite: regenerate pairwise.yaml "
                    f"(python -m harness.pairwise {self.spec.name} > {self.spec.coverage.path})")
        sp = self.space
        mask = sp.restrict(partial, sp.all)
        reasons = Counter(self.semantics_verdict(k) for i, k in enumerate(sp.keys) if mask >> i & 1)
        reasons.pop(None, None)
        reason = reasons.most_common(1)[0][0] if reasons else "no level combination has it"
        return (f"not expressible: the canonical semantics rejects every call with it ({reason}); "
                "no backend can run it as a valid call")

    def covered_by(self, fields: dict) -> set[tuple]:
        """The required pairs a concrete case covers (via the operator's ``classify``)."""
        params = self.spec.Params.model_validate(operator_fields(fields)).model_dump()
        levels = self.spec.coverage.classify(params, fields["dtype"], fields["data"])
        return set(pairs_of(levels, self.parameters))

    def _level_pairs(self, factor: str, level: str, row: dict[str, str]) -> list[tuple]:
        out = []
        for other, value in row.items():
            a, b = sorted(((factor, level), (other, value)), key=lambda fv: self.parameters.index(fv[0]))
            out.append((a, b))
        return out

    def _build_row(self, seed: tuple, uncovered: set, mask: int) -> dict[str, str]:
        (a, va), (b, vb) = seed
        row = {a: va, b: vb}
        # Factors with most levels first: they are the hardest to pair up later.
        for factor in sorted((f for f in self.parameters if f not in row), key=lambda f: -len(self.required[f])):
            best, best_gain = None, -1
            for level in self.required[factor]:
                if factor in self.spec.coverage.key and not self.feasible(row | {factor: level}, mask):
                    continue
                gain = sum(p in uncovered for p in self._level_pairs(factor, level, row))
                if gain > best_gain:
                    best, best_gain = level, gain
            row[factor] = best
        return {f: row[f] for f in self.parameters}

    def runs_on(self, row: dict[str, str], mask: int) -> bool:
        return self.feasible({f: row[f] for f in self.spec.coverage.key}, mask)

    def _cover(self, rows: list[dict[str, str]], mask: int) -> None:
        """Append rows (within ``mask``) until every required pair feasible within ``mask`` is covered
        by some row within ``mask``."""
        wanted = self.required_pairs()
        uncovered = {p for p in wanted if self.feasible(dict(p), mask)}
        for row in rows:
            if self.runs_on(row, mask):
                uncovered -= self.covered_by(self.concrete(row))
        seen_ids = {self.case_id_of(self.concrete(r)) for r in rows}
        while uncovered:
            seeds = [p for p in wanted if p in uncovered][:CANDIDATE_SEEDS]
            best, best_new = None, set()
            for seed in seeds:
                row = self._build_row(seed, uncovered, mask)
                new = self.covered_by(self.concrete(row)) & uncovered
                if len(new) > len(best_new):
                    best, best_new = row, new
            assert best is not None and best_new, "greedy step covered nothing (generator bug)"
            case_id = self.case_id_of(self.concrete(best))
            assert case_id not in seen_ids, case_id
            seen_ids.add(case_id)
            rows.append(best)
            uncovered -= best_new

    def generate(self) -> list[dict[str, str]]:
        """Rows of levels covering every feasible required pair, and for each backend with declared
        capabilities every pair it can run, in rows it can run. Deterministic."""
        rows: list[dict[str, str]] = []
        self._cover(rows, self.space.valid)
        for backend in self.spec.coverage.capabilities:
            self._cover(rows, self.space.runnable[backend])
        return rows

    def render(self, rows: list[dict[str, str]]) -> str:
        cases = sorted((self.concrete(r) for r in rows), key=self.case_id_of)
        full = 1
        for f in self.parameters:
            full *= len(self.required[f])
        header = self.spec.coverage.header
        out = [header.replace("{rows}", str(len(self.parameters))).replace("{n}", str(len(cases)))
               .replace("{full}", str(full)).rstrip("\n"), f"op: {self.spec.name}", "cases:"]
        for fields in cases:
            cid = self.case_id_of(fields)
            seed = int.from_bytes(hashlib.sha256(cid.encode()).digest()[:4], "little") % 100_000
            out.append(f"  - id: {cid}")
            for key in self.spec.coverage.yaml_fields:
                out.append(f"    {key}: {_yaml_value(fields[key])}")
            fills = "".join(f"{name}: {fill}, " for name, fill in fields["data"].items())
            out.append(f"    data: {{{fills}seed: {seed}}}")
        return "\n".join(out) + "\n"


@functools.cache
def for_op(name: str) -> Pairwise:
    return Pairwise(ops.get(name))


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.pairwise", description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=sorted(ops.OPS), help="the operator")
    parser.add_argument("--check", type=Path, help="exit 1 if this file differs from the generator's output")
    args = parser.parse_args(argv)
    gen = for_op(args.op)
    text = gen.render(gen.generate())
    if args.check:
        if args.check.read_text(encoding="utf-8") != text:
            print(f"{args.check} is out of date: regenerate with python -m harness.pairwise {args.op} > {args.check}",
                  file=sys.stderr)
            return 1
        print(f"{args.check} is up to date")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
