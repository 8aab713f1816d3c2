"""What the report pages show about a run, derived from report.json's results.

This module owns the analysis; ``html.py`` and ``markdown.py`` only render it.
Everything here takes results (report.json records) and returns plain data:

* verdict order and which verdicts fail the gate (``VERDICT_ORDER``, ``FAILING``);
* what a result's call looks like as labels (``features``: exact values, and
  what the operator derives, ``OpSpec.report``) and failures grouped per
  (backend, verdict) by the labels they share (``failure_groups``);
* the capability matrix: per backend and parameter value (the operator's
  dimensions), native, emulated or unsupported (``capabilities``);
* the verdict × backend count table (``counts_table``), its forward /
  gradient split (``gradient_count_rows``) and the failing results, most
  severe first (``top_failures``).

``results`` may be a run's lazy sequence (``harness.results``): every function
here makes passes over it and keeps counts, feature bits or the failing
results, never every record.

A gradient result (``gradient`` "x", "w", "b") has the feature
``gradient=∂x`` (a forward result ``gradient=none``), so a failure pattern can
name it; in the capability matrix it is evidence for the ``gradient``
dimension only (a backend without autodiff is not short of any parameter).
"""

from __future__ import annotations

import heapq
import operator
import re
import sys
from array import array
from collections import Counter, defaultdict
from collections.abc import Sequence
from functools import reduce
from typing import Any, Iterable, Optional

from harness import ops
from harness.compare import GREEN
from harness.report.diff import SEVERITY_ORDER, severity
from harness.report.gradients import gradient_of, split_counts

#: Display order of verdicts (least to most severe), skipped after unsupported.
VERDICT_ORDER = ["pass", "xpass", "xfail", "unsupported", "skipped"] + [
    v for v in SEVERITY_ORDER if v not in {"pass", "xpass", "xfail", "unsupported"}]
FAILING = set(SEVERITY_ORDER) - GREEN - {"xpass"}

# ---------------------------------------------------------------- parameter features


def fmt_value(value: Any) -> str:
    """A parameter value as a short label: ``[2, 2]`` -> ``2x2``, lists of equal ints collapse."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        if len(value) in (2, 4) and len(set(map(str, value))) == 1 and all(isinstance(v, int) for v in value):
            return str(value[0])
        return "x".join(fmt_value(v) for v in value)
    return str(value)


def _spec(record: dict):
    """The record's operator spec, or None for a record of an operator this conform does not know."""
    return ops.OPS.get(record.get("op") or "")


def features(record: dict) -> set[str]:
    """What a result's call looks like, as labels: exact values plus the derived facts its operator
    says explain failures (``ReportSpec.features``)."""
    p = record.get("params") or {}
    out = {f"dtype={record.get('dtype')}"} if record.get("dtype") else set()
    out.add("case=" + str(record.get("case", "")).split("[")[0])
    gradient = gradient_of(record)
    out.add(f"gradient=∂{gradient}" if gradient is not None else "gradient=none")
    if "expected_shape" in record and record["expected_shape"] is None:
        out.add("expects rejection")
    for key, value in p.items():
        out.add(f"{key}={fmt_value(value)}")
    spec = _spec(record)
    if spec is not None:
        try:
            out |= spec.report.features(p)
        except (TypeError, ValueError, KeyError):   # an odd saved report: exact values only
            pass
    return out


def _specificity(label: str) -> tuple:
    """Preference among equally good labels: derived facts, then parameter values, then shapes, then case ids."""
    if label.startswith("case="):
        rank = 4
    elif label.startswith(("input=", "output_shape=")):
        rank = 3
    elif "=" in label and not label.startswith("padding="):
        rank = 2 if not any(c in label for c in "<>") else 0
    else:
        rank = 0 if " " in label or "<" in label or ">" in label else 1
    return (rank, len(label), label)


MAX_PATTERN = 4


class _Labels:
    """Feature labels as bits, so a result's features are one int: the groups are found with a few bytes
    per result, not a set of strings (a run's results are read from its journal, ``harness.results``)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.bit: dict[str, int] = {}

    def mask(self, labels: Iterable[str]) -> int:
        mask = 0
        for label in labels:
            if label not in self.bit:
                self.bit[label] = len(self.names)
                self.names.append(label)
            mask |= 1 << self.bit[label]
        return mask

    def labels(self, mask: int) -> list[str]:
        return [self.names[b] for b in range(mask.bit_length()) if mask >> b & 1]


def _all(masks: Iterable[int]) -> int:
    return reduce(operator.and_, masks)


def _has(mask: int, pattern: int) -> bool:
    return mask & pattern == pattern


def _describe(group: list[int], population: list[int], universal: int, hits: set[int], labels: _Labels) -> list[str]:
    """A short pattern shared by every result of ``group`` that singles out results with its verdict.

    Greedy: add the shared feature that most raises the pattern's precision (the
    share of the backend's results with the pattern that have this verdict, ``hits``)
    until it reaches the precision of all shared features together, stops
    improving, or has ``MAX_PATTERN`` labels. ``population``: each result's features (``_Labels.mask``).
    """
    shared_mask = _all(population[i] for i in group) & ~universal
    shared = sorted(labels.labels(shared_mask), key=_specificity)
    if not shared:
        return []

    def precision(pattern: int) -> float:
        matched = [i for i, f in enumerate(population) if _has(f, pattern)]
        return sum(1 for i in matched if i in hits) / len(matched) if matched else 0.0

    full = precision(shared_mask)
    pattern: list[str] = []
    current = precision(0)
    while len(pattern) < MAX_PATTERN and current < full - 1e-12:
        chosen = labels.mask(pattern)
        scored = [(precision(chosen | 1 << labels.bit[label]), -k, label)
                  for k, label in enumerate(shared) if label not in pattern]
        if not scored:
            break
        best_precision, _, best = max(scored)
        if best_precision <= current + 1e-12:
            break
        pattern.append(best)
        current = best_precision
    return pattern


def failure_groups(results: Sequence[dict], verdicts: Optional[set[str]] = None, max_groups: int = 12) -> list[dict]:
    """Non-passing results grouped per (backend, verdict) by the parameter values they share.

    Each group: ``{backend, verdict, pattern: [labels], label, indices, matching, count}`` where
    ``matching`` is how many of the backend's results have the pattern at all, so
    "8 of 8 with this pattern" reads as cause and "8 of 400" as coincidence.
    A (backend, verdict) whose failures share nothing informative is split greedily by the
    feature that covers most of them most specifically.

    Two passes over ``results``: which backends have such results, then each of their results' features
    as one int (``_Labels``) and its verdict; no record is kept.
    """
    verdicts = verdicts or (set(SEVERITY_ORDER) - {"pass"})
    failing_backends = {r["backend"] for r in results if r["verdict"] in verdicts}
    labels = _Labels()
    by_backend: dict[str, tuple[array, list[int], list[str]]] = {}   # result indices, features, verdicts
    for i, r in enumerate(results if failing_backends else ()):
        if r["backend"] in failing_backends:
            members, masks, verdict_of = by_backend.setdefault(r["backend"], (array("q"), [], []))
            members.append(i)
            masks.append(labels.mask(features(r)))
            verdict_of.append(sys.intern(str(r["verdict"])))
    groups = []
    for backend, (members, population, verdict_of) in by_backend.items():
        universal = _all(population)
        by_verdict: dict[str, list[int]] = defaultdict(list)
        for local, verdict in enumerate(verdict_of):
            if verdict in verdicts:
                by_verdict[verdict].append(local)
        for verdict, failing in by_verdict.items():
            same = {local for local, v in enumerate(verdict_of) if v == verdict}
            remaining = list(failing)
            found = 0
            while remaining:
                shared = _all(population[i] for i in remaining) & ~universal
                matching = [i for i in range(len(population)) if _has(population[i], shared)]
                precision = len(remaining) / len(matching) if matching else 1.0
                if len(remaining) == 1 or precision >= 0.5 or found >= max_groups - 1:
                    chosen = remaining
                else:
                    candidates = labels.labels(reduce(operator.or_, (population[i] for i in remaining)) & ~universal)

                    def score(label):
                        bit = 1 << labels.bit[label]
                        covered = sum(1 for i in remaining if population[i] & bit)
                        total = sum(1 for f in population if f & bit)
                        hits = sum(1 for i in range(len(population)) if population[i] & bit and i in same)
                        return (covered * hits / total if total else 0, covered, -len(label), label)

                    # A split must keep at least two results together: isolating one explains nothing.
                    candidates = [c for c in candidates
                                  if sum(1 for i in remaining if population[i] >> labels.bit[c] & 1) >= 2]
                    best = max(sorted(candidates), key=score) if candidates else None
                    chosen = [i for i in remaining if population[i] >> labels.bit[best] & 1] if best else []
                    if chosen and len(chosen) < len(remaining):
                        # Split only when the part is singled out clearly better than the whole.
                        sub = _all(population[i] for i in chosen) & ~universal
                        sub_matching = sum(1 for f in population if _has(f, sub))
                        sub_precision = len(chosen) / sub_matching if sub_matching else 1.0
                        if sub_precision < max(1.5 * precision, 0.2):
                            chosen = remaining
                    else:
                        chosen = remaining
                pattern = _describe(chosen, population, universal, same, labels)
                matching = sum(1 for f in population if _has(f, labels.mask(pattern)))
                if pattern and len(chosen) / matching < 0.05:   # shared by chance: no pattern at all
                    pattern, matching = [], len(population)
                groups.append({"backend": backend, "verdict": verdict, "pattern": pattern,
                               "label": " · ".join([backend, *pattern]) if pattern else f"{backend} · (no shared "
                                        "parameter value)",
                               "indices": [members[i] for i in chosen], "count": len(chosen),
                               "matching": matching})
                chosen_set = set(chosen)
                remaining = [i for i in remaining if i not in chosen_set]
                found += 1
    groups.sort(key=lambda g: (-severity(g["verdict"]), -g["count"], g["backend"], g["label"]))
    return groups


# ---------------------------------------------------------------- capability matrix

def capability_dimensions(results: Iterable[dict]) -> list[tuple]:
    """The capability matrix's (dimension, value-of(record, params)) of the operators in ``results``."""
    seen: dict[str, object] = {}
    names: dict = {}
    gradients = False
    for r in results:
        names.setdefault(r.get("op"), None)
        gradients = gradients or gradient_of(r) is not None
    for name in names:
        spec = ops.OPS.get(name or "")
        for dim, get in (spec.report.capabilities if spec else (("dtype", lambda r, p: r.get("dtype")),)):
            seen.setdefault(dim, get)
    if gradients:
        seen["gradient"] = lambda r, p: "∂" + gradient_of(r) if gradient_of(r) is not None else None
    return list(seen.items())


def emulated_dimensions(notes: list[str], op: Optional[str] = None) -> set[str]:
    """Which capability dimensions an adapter's emulation notes are about (``ReportSpec.emulated``).

    Without the operator (or for one this conform does not know), only the dtype: a note naming a
    floating-point type in its first words ("NumPy has no bfloat16: ...").
    """
    spec = ops.OPS.get(op or "")
    if spec is not None:
        return spec.report.emulated(notes)
    return {"dtype" for note in notes or [] if re.search(r"\b(b?float(16|32|64))\b", str(note)[:60])}

def capabilities(results: Sequence[dict], backends: list[str]) -> list[dict]:
    """Rows ``{dimension, value, cells: {backend: {status, tested, unsupported, emulated, title}}}``.

    Derived from the results of valid calls (a case that expects rejection tests error handling, not
    a capability), each attributed to the dimension it is about:

    * ``emulated``: to the dimensions its notes name (``emulated_dimensions``), so a call emulated for
      its padding does not make its dtype look emulated;
    * ``unsupported``: to the parameter value(s) of the call with the highest unsupported rate for
      that backend (bfloat16 rather than the NCHW layout every such call also has).

    Skipped results are not evidence and are left out. Three passes over ``results``, each keeping counts.
    """
    dimensions = capability_dimensions(results)

    def values_of(r: dict) -> list[tuple[str, str]]:
        if gradient_of(r) is not None:   # evidence about autodiff, not about the parameters
            return [("gradient", "∂" + str(gradient_of(r)))]
        p = r.get("params") or {}
        spec = _spec(r)
        own = dict(spec.report.capabilities) if spec else {}
        pairs = []
        for dim, _ in dimensions:
            get = own.get(dim) or (lambda r, p: r.get("dtype") if dim == "dtype" else None)
            try:
                value = get(r, p)
            except (TypeError, ValueError):
                value = None
            if value is not None:
                pairs.append((dim, str(value)))
        return pairs

    def evidence() -> Iterable[dict]:
        return (r for r in results if r["verdict"] != "skipped" and r.get("expected_shape") is not None)

    tested: Counter = Counter()
    refused: Counter = Counter()
    for r in evidence():
        for pair in values_of(r):
            tested[(r["backend"], pair)] += 1
            refused[(r["backend"], pair)] += r["verdict"] == "unsupported"
    stats: dict[tuple, dict] = {}
    order: list[tuple] = []
    for r in evidence():
        pairs = values_of(r)
        emulated = emulated_dimensions(r.get("notes") or [], r.get("op")) if r.get("emulated") else set()
        blamed: set = set()
        if r["verdict"] == "unsupported" and pairs:
            rates = {pair: refused[(r["backend"], pair)] / tested[(r["backend"], pair)] for pair in pairs}
            top = max(rates.values())
            blamed = {pair for pair, rate in rates.items() if rate >= top - 1e-12}
        for key in pairs:
            if key not in stats:
                stats[key] = defaultdict(lambda: {"tested": 0, "ran": 0, "unsupported": 0, "emulated": 0,
                                                  "reasons": Counter(), "notes": Counter()})
                order.append(key)
            cell = stats[key][r["backend"]]
            cell["tested"] += 1
            cell["ran"] += r["verdict"] != "unsupported"
            if key in blamed:
                cell["unsupported"] += 1
                cell["reasons"][(r.get("reason") or "-").splitlines()[0][:200]] += 1
            elif key[0] in emulated:
                cell["emulated"] += 1
                for note in r.get("notes") or []:
                    if key[0] in emulated_dimensions([note], r.get("op")):
                        cell["notes"][note[:200]] += 1
    dim_rank = {d: i for i, (d, _) in enumerate(dimensions)}
    order.sort(key=lambda k: (dim_rank[k[0]], k[1]))
    rows = []
    for key in order:
        cells = {}
        for b in backends:
            c = stats[key].get(b)
            if not c or not c["tested"]:
                cells[b] = {"status": "untested", "text": "–", "title": "no result"}
                continue
            n, u, e, ran = c["tested"], c["unsupported"], c["emulated"], c["ran"]
            if u == n:
                status, text = "unsupported", "unsupported"
            elif u:
                status, text = "partial", f"unsupported {u}/{n}" + (f", emulated {e}/{ran}" if e else "")
            elif e and e == ran:
                status, text = "emulated", "emulated"
            elif e:
                status, text = "emulated-some", f"emulated {e}/{ran}"
            else:
                status, text = "native", "native"
            title = [f"{n} results: {ran - e} native, {e} emulated, {u} unsupported"
                     + (f", {n - ran - u} unsupported because of another parameter" if n - ran - u else "")]
            title += [f"unsupported: {reason} ({count})" for reason, count in c["reasons"].most_common(2)]
            title += [f"emulated: {note} ({count})" for note, count in c["notes"].most_common(2)]
            cells[b] = {"status": status, "text": text, "title": "\n".join(title)}
        rows.append({"dimension": key[0], "value": key[1], "cells": cells})
    return rows


# ---------------------------------------------------------------- verdict summaries

def bound_ratio(r: dict) -> Optional[float]:
    """A result's ``metrics.bound_ratio`` as a number (report.json writes inf/nan as strings), else None."""
    value = (r.get("metrics") or {}).get("bound_ratio")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return value if isinstance(value, (int, float)) else None


def counts_table(report: dict, backends: list[str]) -> tuple[list[str], list[dict]]:
    """(verdict columns, one row per backend) of the summary's verdict × backend counts."""
    by_backend = (report.get("summary") or {}).get("by_backend") or {}
    present = {v for counts in by_backend.values() for v in counts}
    verdicts = [v for v in VERDICT_ORDER if v in present] + sorted(present - set(VERDICT_ORDER))
    rows = [{"backend": b, "counts": by_backend.get(b, {})} for b in backends if b in by_backend]
    return verdicts, rows


def gradient_count_rows(results: list[dict], backends: list[str]) -> list[dict]:
    """Rows ``{backend, side: "forward"|"gradients", counts}`` of the verdict counts split per backend;
    empty when no result is a gradient (the count table says it all)."""
    if not any(gradient_of(r) is not None for r in results):
        return []
    split = split_counts(results)
    return [{"backend": b, "side": label, "counts": split[b][side]}
            for b in backends if b in split for side, label in (("forward", "forward"), ("gradient", "gradients"))]


def top_failures(results: Iterable[dict], n: int) -> tuple[list[dict], int]:
    """The ``n`` most severe results that fail the gate (worst bound_ratio first), and how many fail in all."""
    count = [0]

    def failing() -> Iterable[dict]:
        for r in results:
            if r["verdict"] in FAILING:
                count[0] += 1
                yield r
    # nsmallest is sorted(...)[:n], ties in input order, holding n records at a time.
    top = heapq.nsmallest(n, failing(), key=lambda r: (-severity(r["verdict"]), -(bound_ratio(r) or 0)))
    return top, count[0]
