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

This module owns the rendering: the Jinja2 environment, embedding heatmaps,
and writing the file. The data the page's script renders (``page_data``) is
made and streamed by ``html_data.py``: the template is rendered with a marker
in its place, and the data is written between the two halves, so a run's
results are never all in memory. What the page shows (failure groups,
capability matrix, counts) is derived in ``analysis.py``.

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
import io
import json
import math
import os
import re
from pathlib import Path
from typing import IO, Any, Optional
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from harness.report import claims as claim_reports
from harness.report import atomic_write
from harness.report.analysis import FAILING, capabilities, counts_table, failure_groups, gradient_count_rows
from harness.report.gradients import gradient_of, suffix
from harness.report.html_data import PageData
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


def page_data(report: dict, base: Optional[Path], link_prefix: str = "", out: Optional[Path] = None) -> dict:
    """The JSON the page's script renders: cases × backends, compactly (``html_data``)."""
    return _page_data(report, base, link_prefix, out).as_dict()


def _page_data(report: dict, base: Optional[Path], link_prefix: str, out: Optional[Path]) -> PageData:
    return PageData(report, base, link_prefix, entry=lambda value: _entry(value, out), heatmap=_heatmap_uri,
                    safe=_safe_relative)


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


#: Where the page data goes in the rendered template; NUL never comes out of a ``{{ }}`` (``_finalize``).
_DATA = "\x00conform-data\x00"


def write_to(handle: IO[str], report: dict, base: Optional[Path] = None, out: Optional[Path] = None) -> None:
    """Write the HTML of a report. ``base``: folder of report.json (heatmaps, repro/);
    ``out``: folder the HTML goes to (links to repro/ are made relative to it).

    The template is rendered with a marker for the page data, which is then streamed in its place
    (``html_data``); everything else on the page is counts, or bounded by the failing results."""
    base = Path(base) if base is not None else None
    prefix = ""
    if base is not None and out is not None and base.resolve() != Path(out).resolve():
        prefix = quote(Path(os.path.relpath(base.resolve(), Path(out).resolve())).as_posix()) + "/"
    data = _page_data(report, base, prefix, out)
    head, _, tail = _page(report, data.layout).rpartition(_DATA)
    handle.write(head)
    data.write(handle, _json_for_html)
    handle.write(tail)


def render(report: dict, base: Optional[Path] = None, out: Optional[Path] = None) -> str:
    """The HTML text of a report (``write_to``)."""
    text = io.StringIO()
    write_to(text, report, base, out)
    return text.getvalue()


def _page(report: dict, layout) -> str:
    """The page with ``_DATA`` where the page data goes."""
    results = report.get("results") or []
    backends = layout.backends
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
    failing = sum(n for v, n in layout.by_verdict.items() if v in FAILING or (v == "xpass" and gate.get("strict")))
    return _env().get_template("report.html.j2").render(
        report=report, env=env_info, gate=gate, backends=backends, verdicts=verdicts, count_rows=count_rows,
        groups=groups, capabilities=capabilities(results, backends), n_results=len(results),
        n_cases=layout.cases, n_gradients=layout.gradients,
        gradient_rows=gradient_count_rows(results, backends) if layout.gradients else [], n_failing=failing,
        data_json=Markup(_DATA), script=script,
        script_hash=script_hash, style=style, stale=report.get("stale_divergences") or [],
        verdict_class=lambda v: "v-" + re.sub(r"[^a-z_]", "", str(v)),
        claims=claim_reports.claims_of(report), status_word=claim_reports.status_word)


def write(report: dict, out: Path, base: Optional[Path] = None) -> Path:
    out = Path(out)
    path = out / "report.html"
    atomic_write(path, render(report, base if base is not None else out, out))
    return path
