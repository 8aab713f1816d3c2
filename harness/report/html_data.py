"""The data report.html's script renders (cases × backends, compactly), streamed as JSON.

The page embeds one JSON object (``page_data`` builds it as a dict, for tests)::

    {backends, verdicts, files, param_keys, spread_gloss, param_values,
     cases: [one row per (case, gradient)], details: [one per result], severity, failing}

A run's results are read from its journal (``harness.results``), so this is
written in three passes, none holding the records: the first gathers what is
small (backends, verdicts, files, each parameter's values) and, per result, the
number of its row, in compact arrays; the second writes the rows in page order
(a case's gradient rows after its forward row), reading each row's results by
index; the third writes each result's details in report order.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Optional, Sequence

from harness.report import write_json_object
from harness.report.analysis import FAILING, VERDICT_ORDER, bound_ratio, fmt_value
from harness.report.diff import severity
from harness.report.explain import SPREAD_GLOSS, bound_gloss, spread_line, worst_element
from harness.report.gradients import gradient_of, rank, suffix


def _num(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _natural(text: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


class _Layout:
    """What the first pass learns: the small lists of the page data and each result's row."""

    def __init__(self, report: dict, results: Sequence[dict]):
        backends = dict.fromkeys((report.get("environment") or {}).get("backends") or {})
        self.by_verdict: Counter = Counter()
        self.files: list[str] = []
        findex: dict[str, int] = {}
        keys: dict[str, int] = {}           # parameter -> how many results have it
        labels: dict[str, set[str]] = {"dtype": set(), "gradient": set()}
        rows: dict[tuple, int] = {}          # (case, gradient) -> row number, only during this pass
        first_of_case: dict[str, int] = {}
        self.row_of = array("q")             # result -> its row
        self.row_start = array("q")          # row -> its first result
        sort_keys = []
        self.gradients = 0
        for n, r in enumerate(results):
            backends.setdefault(r["backend"], None)
            self.by_verdict[r["verdict"]] += 1
            g = gradient_of(r)
            self.gradients += g is not None
            key = (r["case"], g)
            if key not in rows:
                rows[key] = len(self.row_start)
                self.row_start.append(n)
                sort_keys.append((first_of_case.setdefault(r["case"], len(sort_keys)), rank(g)))
                f = str(r.get("file") or "")
                if f not in findex:
                    findex[f] = len(self.files)
                    self.files.append(f)
            self.row_of.append(rows[key])
            params = r.get("params") or {}
            for k, v in params.items():
                keys[k] = keys.get(k, 0) + 1
                labels.setdefault(k, set()).add(fmt_value(v))
            labels["dtype"].add(fmt_value(r.get("dtype")))
            labels["gradient"].add("∂" + g if g is not None else "forward")
        self.count = len(self.row_of)
        self.cases = len(first_of_case)
        self.findex = findex
        self.backends = list(backends)
        present = [v for v in VERDICT_ORDER if v in self.by_verdict]
        self.verdicts = present + sorted(set(self.by_verdict) - set(present))
        # A report with gradient results can be filtered by them like by a parameter (``gradient``).
        self.param_keys = ["dtype"] + (["gradient"] if self.gradients else []) + [k for k in keys if k != "dtype"]
        self.values: dict[str, list[str]] = {}
        for k in self.param_keys:
            found = labels[k] | ({"–"} if k not in ("dtype", "gradient") and keys[k] < self.count else set())
            natural = (lambda v: rank(None if v == "forward" else v[1:])) if k == "gradient" else _natural
            self.values[k] = sorted(found, key=lambda v: (natural(v), v))
        self.vpos = {k: {v: i for i, v in enumerate(vs)} for k, vs in self.values.items()}
        # A case's gradient rows follow its forward row (file order), whatever order the results came in.
        self.row_order = array("q", sorted(range(len(sort_keys)), key=sort_keys.__getitem__))


def _row(layout: _Layout, records: list[tuple[int, dict]]) -> list:
    """One matrix row: [label, file, line, parameter values, cells, source, description, spread, gradient, case id]."""
    bindex = {b: i for i, b in enumerate(layout.backends)}
    vindex = {v: i for i, v in enumerate(layout.verdicts)}
    r = records[0][1]
    cid, g = r["case"], gradient_of(r)
    params = {"dtype": r.get("dtype"), **(r.get("params") or {})}
    if layout.gradients:
        params["gradient"] = "∂" + g if g is not None else "forward"
    pv = [layout.vpos[k][fmt_value(params.get(k)) if k in params else "–"] for k in layout.param_keys]
    cells: list = [None] * len(layout.backends)
    spread, verdicts = None, {}
    for n, rec in records:
        cells[bindex[rec["backend"]]] = [vindex[rec["verdict"]], _num(bound_ratio(rec)), n]
        verdicts[rec["backend"]] = rec.get("original_verdict") or rec["verdict"]
        if spread is None and isinstance(rec.get("spread"), dict):
            spread = rec["spread"]
    if spread is not None:
        spread = {**{k: _num(v) for k, v in spread.items()}, "line": spread_line(spread, verdicts)}
    f = str(r.get("file") or "")
    return [cid + suffix(g), layout.findex[f], r.get("line"), pv, cells, r.get("source") or "",
            r.get("description") or "", spread, g, cid]


def _rows(layout: _Layout, results: Sequence[dict]) -> Iterator[list]:
    members = array("q", sorted(range(layout.count), key=layout.row_of.__getitem__))   # grouped by row, in order
    start = array("q", [0] * (len(layout.row_start) + 1))
    for row in layout.row_of:
        start[row + 1] += 1
    for i in range(len(layout.row_start)):
        start[i + 1] += start[i]
    for row in layout.row_order:
        yield _row(layout, [(n, results[n]) for n in members[start[row]:start[row + 1]]])


def _detail(r: dict, base: Optional[Path], link_prefix: str, entry: Callable, heatmap: Callable,
            safe: Callable) -> dict:
    repro = safe(r.get("repro"))
    detail = {k: _num(v) if not isinstance(v, (dict, list)) else v for k, v in {
        "reason": r.get("reason") or "", "expected_shape": r.get("expected_shape"),
        "actual_shape": r.get("actual_shape"), "native_call": r.get("native_call"),
        "gradient_call": r.get("gradient_call"), "forward_failed": bool(r.get("forward_failed")),
        "emulated": bool(r.get("emulated")), "notes": r.get("notes") or [], "error": r.get("error"),
        "duration_ms": r.get("duration_ms"), "divergence": entry(r.get("divergence")),
        "resembles": entry(r.get("resembles")),
        "original_verdict": r.get("original_verdict"), "agrees_with": r.get("agrees_with"),
        "suspect_oracle": r.get("suspect_oracle"),
    }.items() if v not in (None, "", [], False)}
    if r.get("metrics"):
        detail["metrics"] = {k: _num(v) for k, v in r["metrics"].items()}
        if r["verdict"] != "pass":   # in words where it matters (a third of the page's size otherwise)
            detail["worst"] = worst_element(r["metrics"])
            detail["gloss"] = bound_gloss(r["metrics"], r.get("tolerance"))
    if r.get("tolerance") and r["verdict"] not in ("pass",):
        detail["tolerance"] = {k: _num(v) for k, v in r["tolerance"].items()}
    if repro and r["verdict"] not in ("pass",):
        detail["repro"] = link_prefix + repro
    if r["verdict"] != "pass":
        uri = heatmap(base, r.get("heatmap"))
        if uri:
            detail["heatmap"] = uri
    return detail


class PageData:
    """The page data of ``report`` (first pass done on construction); ``write`` streams it, ``as_dict`` builds it.

    ``entry``, ``heatmap``, ``safe``: how html.py links registry entries, embeds heatmaps and vets paths.
    """

    def __init__(self, report: dict, base: Optional[Path], link_prefix: str, entry: Callable,
                 heatmap: Callable, safe: Callable):
        self.results = report.get("results") or []
        self.layout = _Layout(report, self.results)
        self._detail = lambda r: _detail(r, base, link_prefix, entry, heatmap, safe)

    def _parts(self) -> Iterator[tuple[str, Any]]:
        lay = self.layout
        yield from (("backends", lay.backends), ("verdicts", lay.verdicts), ("files", lay.files),
                    ("param_keys", lay.param_keys), ("spread_gloss", SPREAD_GLOSS), ("param_values", lay.values))
        yield "cases", _rows(lay, self.results)
        yield "details", (self._detail(r) for r in self.results)
        yield "severity", {v: severity(v) for v in lay.verdicts}
        yield "failing", sorted(FAILING | {"xpass"})

    def as_dict(self) -> dict:
        return {key: list(value) if key in ("cases", "details") else value for key, value in self._parts()}

    def write(self, handle: IO[str], encode: Callable[[Any], str]) -> None:
        """The JSON text of ``as_dict()``, each row and detail encoded by ``encode`` as it is made."""
        write_json_object(handle, self._parts(), encode, streamed=("cases", "details"))
