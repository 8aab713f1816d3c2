"""report.html: one self-contained page a person reads first (DESIGN.md §7).

Layout, top to bottom: the gate and the environment; a verdict × backend
count table; failures grouped by the parameter values they share; the
capability matrix (per backend and parameter value: native, emulated,
unsupported); the case × backend matrix (filter, search, sort; it renders
only the rows in view, so 10,000 results stay fast); and a detail dialog per
result (parameters, every backend's native call, metrics, |diff| heatmap,
reproducer link).

Gradient results (``gradient`` ``"x"``, ``"w"``, ``"b"``) are rows of their
own under their case's forward row, labelled ``case-id · ∂x``: a matrix row
is a (case, gradient), and its dialog shows the framework's autodiff call
(``gradient_call``) beside the forward call. The ``gradient`` filter (shown
when the report has gradients) selects forward or one operand.

This module owns the rendering: the Jinja2 environment, the data the page's
script renders (``page_data``), embedding heatmaps, and writing the file.
What the page shows (failure groups, capability matrix, counts) is derived in
``analysis.py``.

Safety: every string from a case file or a report is escaped. Jinja2
autoescapes the server-rendered parts; the data for the matrix is embedded
as JSON in a ``<script type="application/json">`` block with ``<``, ``>``,
``&`` escaped as ``\\u003c`` ..., and the page's script only ever writes it with
``textContent``. A Content-Security-Policy allows no network access and only
the page's own script (by hash), so even a mistake in escaping could not run
injected code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from harness.report import claims as claim_reports
from harness.report import atomic_write
from harness.report.analysis import (FAILING, VERDICT_ORDER, bound_ratio, capabilities, counts_table,
                                     failure_groups, fmt_value, gradient_count_rows)
from harness.report.diff import severity
from harness.report.explain import SPREAD_GLOSS, bound_gloss, spread_line, worst_element
from harness.report.gradients import gradient_of, has_gradients, rank, suffix
from harness.text import printable

TEMPLATES = Path(__file__).parent / "templates"

# ---------------------------------------------------------------- page data

_SAFE_REL = re.compile(r"^[A-Za-z0-9_.=,+\-/]+$")


def _safe_relative(path: Any) -> Optional[str]:
    """A report-relative path we are willing to link or read: no scheme, no '..', no absolute path."""
    if not isinstance(path, str) or not _SAFE_REL.match(path) or path.startswith("/"):
        return None
    if any(part in ("", "..") for part in path.split("/")):
        return None
    return path


def _heatmap_uri(base: Optional[Path], rel: Any) -> Optional[str]:
    rel = _safe_relative(rel)
    if base is None or rel is None:
        return None
    path = (base / rel).resolve()
    if base.resolve() not in path.parents or not path.is_file() or path.stat().st_size > 2_000_000:
        return None
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _registry_href(link: Any, out: Optional[Path]) -> Optional[str]:
    """Where a registry entry's ``link`` points, as an href from the report's folder, or None.

    Web links are kept; a relative link is a path in the project (``docs/findings.md#f2``, relative to
    where conform runs) and is linked only if that file exists. Anything else stays plain text.
    """
    if not isinstance(link, str):
        return None
    if re.match(r"^https?://[^\s\"'<>]+$", link):
        return link
    path, _, fragment = link.partition("#")
    rel = _safe_relative(path)
    if rel is None or out is None or not (Path.cwd() / rel).is_file():
        return None
    href = quote(Path(os.path.relpath((Path.cwd() / rel).resolve(), Path(out).resolve())).as_posix())
    return href + ("#" + quote(fragment) if fragment else "")


def _entry(entry: Any, out: Optional[Path]) -> Any:
    """A registry entry on a record (``divergence``, ``resembles``) with an ``href`` when its link has one."""
    if not isinstance(entry, dict):
        return entry
    entry = dict(entry)
    # The registry resolved the link against its own folder when it classified the result (``href``);
    # only web and file URIs of that are followed, anything else (``javascript:``) is dropped.
    href = entry.pop("href", None)
    if not (isinstance(href, str) and re.match(r"^(https?|file)://[^\s\"'<>]+$", href)):
        href = _registry_href(entry.get("link"), out)
    return {**entry, "href": href} if href else entry


def _row_key(r: dict) -> tuple:
    """A matrix row: (case, gradient); the forward row has gradient None."""
    return (r["case"], gradient_of(r))


def _case_spread(results: list[dict]) -> dict[tuple, dict]:
    """Per row (``_row_key``): its framework spread as the page shows it (the sentence and the numbers), if any."""
    spreads: dict[tuple, dict] = {}
    verdicts: dict[tuple, dict[str, str]] = {}
    for r in results:
        key = _row_key(r)
        verdicts.setdefault(key, {})[r["backend"]] = r.get("original_verdict") or r["verdict"]
        if isinstance(r.get("spread"), dict) and key not in spreads:
            spreads[key] = r["spread"]
    return {case: {**{k: _num(v) for k, v in spread.items()}, "line": spread_line(spread, verdicts[case])}
            for case, spread in spreads.items()}


def _num(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def page_data(report: dict, base: Optional[Path], link_prefix: str = "", out: Optional[Path] = None) -> dict:
    """The JSON the page's script renders: cases × backends, compactly."""
    results = report.get("results") or []
    spreads = _case_spread(results)
    backends = list(dict.fromkeys(list((report.get("environment") or {}).get("backends") or {})
                                  + [r["backend"] for r in results]))
    bindex = {b: i for i, b in enumerate(backends)}
    verdicts = [v for v in VERDICT_ORDER if any(r["verdict"] == v for r in results)]
    verdicts += sorted({r["verdict"] for r in results} - set(verdicts))
    vindex = {v: i for i, v in enumerate(verdicts)}
    files: list[str] = []
    findex: dict[str, int] = {}
    # A report with gradient results can be filtered by them like by a parameter (``gradient``).
    param_keys: list[str] = ["dtype"] + (["gradient"] if has_gradients(results) else [])
    for r in results:
        for key in (r.get("params") or {}):
            if key not in param_keys:
                param_keys.append(key)
    values: dict[str, list[str]] = {k: [] for k in param_keys}
    vpos: dict[str, dict[str, int]] = {k: {} for k in param_keys}
    cases: list[list] = []
    cindex: dict[tuple, int] = {}
    details = []
    for n, r in enumerate(results):
        cid = _row_key(r)
        if cid not in cindex:
            f = str(r.get("file") or "")
            if f not in findex:
                findex[f] = len(files)
                files.append(f)
            pv = []
            params = {"dtype": r.get("dtype"), **(r.get("params") or {})}
            if "gradient" in param_keys:
                params["gradient"] = "∂" + cid[1] if cid[1] is not None else "forward"
            for k in param_keys:
                label = fmt_value(params.get(k)) if k in params else "–"
                if label not in vpos[k]:
                    vpos[k][label] = len(values[k])
                    values[k].append(label)
                pv.append(vpos[k][label])
            cindex[cid] = len(cases)
            # [label, file, line, parameter values, cells, source, description, spread, gradient, case id]
            cases.append([cid[0] + suffix(cid[1]), findex[f], r.get("line"), pv, [None] * len(backends),
                          r.get("source") or "", r.get("description") or "", spreads.get(cid), cid[1], cid[0]])
        ratio = bound_ratio(r)
        cases[cindex[cid]][4][bindex[r["backend"]]] = [vindex[r["verdict"]], _num(ratio), n]
        repro = _safe_relative(r.get("repro"))
        detail = {k: _num(v) if not isinstance(v, (dict, list)) else v for k, v in {
            "reason": r.get("reason") or "", "expected_shape": r.get("expected_shape"),
            "actual_shape": r.get("actual_shape"), "native_call": r.get("native_call"),
            "gradient_call": r.get("gradient_call"), "forward_failed": bool(r.get("forward_failed")),
            "emulated": bool(r.get("emulated")), "notes": r.get("notes") or [], "error": r.get("error"),
            "duration_ms": r.get("duration_ms"), "divergence": _entry(r.get("divergence"), out),
            "resembles": _entry(r.get("resembles"), out),
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
            uri = _heatmap_uri(base, r.get("heatmap"))
            if uri:
                detail["heatmap"] = uri
        details.append(detail)
    # A case's gradient rows follow its forward row (file order), whatever order the results came in.
    first = {}
    for i, case in enumerate(cases):
        first.setdefault(case[9], i)
    order = sorted(range(len(cases)), key=lambda i: (first[cases[i][9]], rank(cases[i][8])))
    cases = [cases[i] for i in order]
    # Sort each parameter's values naturally (numbers by value), gradients forward, x, w, b; and remap.
    for k in param_keys:
        natural = (lambda i: rank(None if values[k][i] == "forward" else values[k][i][1:])) if k == "gradient" \
            else (lambda i: _natural(values[k][i]))
        order = sorted(range(len(values[k])), key=natural)
        remap = {old: new for new, old in enumerate(order)}
        values[k] = [values[k][i] for i in order]
        ki = param_keys.index(k)
        for case in cases:
            case[3][ki] = remap[case[3][ki]]
    return {"backends": backends, "verdicts": verdicts, "files": files, "param_keys": param_keys,
            "spread_gloss": SPREAD_GLOSS,
            "param_values": values, "cases": cases, "details": details,
            "severity": {v: severity(v) for v in verdicts}, "failing": sorted(FAILING | {"xpass"})}


def _natural(text: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings (as report.json does)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")


def _json_for_html(data: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>', '&' or line separators unescaped."""
    text = json.dumps(_finite(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # JSON leaves DEL, C1 controls (CSI is \x9b), line separators and bidi overrides raw: escape them too.
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True, finalize=_finalize)
    env.filters["ratio"] = format_ratio
    return env


def _finalize(value):
    """Every ``{{ }}`` of the template: control characters and bidi overrides shown as escapes, not obeyed."""
    return value if isinstance(value, Markup) or not isinstance(value, str) else printable(value, keep="\n\t")


def format_ratio(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if value == 0:
        return "0"
    if math.isinf(value):
        return "inf"
    return f"{value:.2g}" if value < 100 else f"{value:.1e}"


def render(report: dict, base: Optional[Path] = None, out: Optional[Path] = None) -> str:
    """The HTML text of a report. ``base``: folder of report.json (heatmaps, repro/);
    ``out``: folder the HTML goes to (links to repro/ are made relative to it)."""
    base = Path(base) if base is not None else None
    prefix = ""
    if base is not None and out is not None and base.resolve() != Path(out).resolve():
        prefix = quote(Path(os.path.relpath(base.resolve(), Path(out).resolve())).as_posix()) + "/"
    data = page_data(report, base, prefix, out)
    results = report.get("results") or []
    backends = data["backends"]
    groups = failure_groups(results)
    for g in groups:
        g["cases"] = [(results[i]["case"] + suffix(gradient_of(results[i])), i) for i in g["indices"][:200]]
        g["more"] = max(0, g["count"] - 200)
    verdicts, count_rows = counts_table(report, backends)
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    style = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    env_info = report.get("environment") or {}
    gate = report.get("gate") or {}
    failing = sum(1 for r in results if r["verdict"] in FAILING or (r["verdict"] == "xpass" and gate.get("strict")))
    return _env().get_template("report.html.j2").render(
        report=report, env=env_info, gate=gate, backends=backends, verdicts=verdicts, count_rows=count_rows,
        groups=groups, capabilities=capabilities(results, backends), n_results=len(results),
        n_cases=len({r["case"] for r in results}), n_gradients=sum(1 for r in results if gradient_of(r)),
        gradient_rows=gradient_count_rows(results, backends), n_failing=failing, data_json=_json_for_html(data), script=script,
        script_hash=script_hash, style=style, stale=report.get("stale_divergences") or [],
        verdict_class=lambda v: "v-" + re.sub(r"[^a-z_]", "", str(v)),
        claims=claim_reports.claims_of(report), status_word=claim_reports.status_word)


def write(report: dict, out: Path, base: Optional[Path] = None) -> Path:
    out = Path(out)
    path = out / "report.html"
    atomic_write(path, render(report, base if base is not None else out, out))
    return path
