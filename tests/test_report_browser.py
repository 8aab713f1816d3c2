"""report.html in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

`make test` installs both (apt-get chromium, pip playwright); Playwright's own
browser download is never used (``executable_path``). Without /usr/bin/chromium
these tests skip and say why. Screenshots go to reports/screenshots/ so a
person can look at what the tests saw.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "reports" / "screenshots"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (make test installs Debian's "
                                                     "chromium: apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="the playwright package is not installed (pip install -c constraints.txt '.[test]')"),
]

sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Page:
    """A page plus every console error and uncaught exception it produced."""

    def __init__(self, browser, path: Path):
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        start = time.perf_counter()
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector("body[data-ready='1']", state="attached")
        self.open_s = time.perf_counter() - start

    def count(self) -> int:
        return int(self.page.get_attribute("#matrix-count", "data-count"))

    def rows(self) -> int:
        return self.page.locator("#matrix-body tr[data-case]").count()


CASES = """
op: conv2d_transpose
defaults: {input: [1, 2, 4, 4], out_channels: 2, data: {seed: 3}}
cases:
  - id: ms-output-padding
    description: MindSpore fills output_padding rows with zeros (finding F2)
    kernel_size: 3
    stride: 2
    padding: 1
    output_padding: 1
  - id: sweep
    kernel_size: [3, 2]
    matrix:
      stride: [1, 2, 3]
      padding: [same, valid, 1]
  - id: bf16-spread
    description: tf.nn sums bfloat16 in bfloat16 on this path, torch.functional in float32
    input: [1, 64, 16, 16]
    out_channels: 32
    kernel_size: 4
    stride: 2
    padding: 1
    bias: true
    dtype: bfloat16
    data: {x: normal, w: normal, seed: 2}
"""


@pytest.fixture(scope="module")
def real_report(tmp_path_factory) -> Path:
    """report.html of a real run (numpy plus whichever frameworks are installed), with a real failure."""
    folder = tmp_path_factory.mktemp("browser")
    cases = folder / "cases.yaml"
    cases.write_text(textwrap.dedent(CASES).lstrip())
    backends = ["numpy"] + [b for b, m in {"torch.functional": "torch", "mindspore.nn": "mindspore",
                                            "tf.nn": "tensorflow"}.items() if importlib.util.find_spec(m)]
    out = folder / "out"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(cases), "--backends", ",".join(backends),
                           "--out", str(out), "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr
    return out / "report.html"


def test_report_opens_filters_and_shows_a_failure(browser, real_report):
    page = Page(browser, real_report)
    p = page.page
    assert page.errors == []
    total = page.count()
    assert total == 11 and page.rows() == 11
    assert p.locator("#gate").inner_text().startswith("gate:")
    assert "mindspore" in p.locator("#environment").inner_text() or "numpy" in p.locator("#environment").inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(SHOTS / "report-top.png"))

    # A parameter filter shrinks the matrix ...
    p.select_option("select[data-param='padding']", label="valid")
    assert page.count() == 3 and page.rows() == 3
    # ... free text narrows it further, a glob too ...
    p.fill("#f-search", "sweep*stride=2*")
    p.wait_for_selector("#matrix-count[data-count='1']")   # the search is debounced
    assert page.rows() == 1
    p.click("#f-reset")
    assert page.count() == total
    # ... and so does the verdict filter.
    has_failure = p.locator("td.cell.v-value_mismatch").count() > 0
    p.click("#f-failing")
    assert page.count() < total
    if has_failure:
        # Sorting by a backend's column puts its worst result first.
        p.click("#matrix-head th[data-backend='mindspore.nn']")
        ms_cells = p.locator("#matrix-body td[data-backend='mindspore.nn']")
        verdicts = ms_cells.evaluate_all("cells => cells.map(c => c.dataset.verdict)")
        failing = [v != "pass" for v in verdicts]
        assert failing == sorted(failing, reverse=True) and failing[0], verdicts   # failures first
        p.locator("#matrix").scroll_into_view_if_needed()
        p.screenshot(path=str(SHOTS / "report-matrix-failing.png"))
        p.click("tr:has(td.case:text-is('ms-output-padding')) td.cell.v-value_mismatch")
        dialog = p.locator("dialog#detail")
        dialog.wait_for(state="visible")
        text = dialog.inner_text()
        assert "ms-output-padding" in text and "MindSpore fills output_padding rows" in text
        block = dialog.locator(".backend-block[data-backend='mindspore.nn']")
        assert "mindspore.nn.Conv2dTranspose(" in block.locator("pre code").inner_text()
        assert "bound_ratio" in block.inner_text() and "mismatch_fraction" in block.inner_text()
        # The worst element's numbers, and what the ratio means, in plain words.
        record = _result(real_report, "ms-output-padding", "mindspore.nn")
        metrics = record["metrics"]
        gloss = block.locator("p.gloss").inner_text()
        assert f"worst element at {metrics['worst_index']}:" in gloss and "expected" in gloss
        assert f"{metrics['bound_ratio']:.3g}× the most a correct float32 implementation could err there" in gloss
        for key in ("worst_actual", "worst_expected", "worst_bound"):
            assert block.locator(f"table.kv th:text-is('{key}')").count() == 1
        assert block.locator(f"table.kv tr:has(th:text-is('worst_expected')) td").inner_text() == \
            str(metrics["worst_expected"])
        # The case's framework spread: MindSpore's failure puts it in the furthest pair.
        spread = dialog.locator(".spread")
        assert "mindspore.nn" in record["spread"]["pair"]
        assert " vs ".join(record["spread"]["pair"]) in spread.inner_text()
        heatmap = block.locator(".heatmap img")
        assert heatmap.evaluate("img => img.complete && img.naturalWidth > 0")
        href = block.locator("p.repro a").get_attribute("href")
        assert href == "repro/ms-output-padding/mindspore.nn/repro.py"
        assert (real_report.parent / href).is_file()
        # Every backend's native call is there to copy.
        assert dialog.locator(".backend-block pre code").count() >= 2
        p.screenshot(path=str(SHOTS / "report-detail.png"))
        p.keyboard.press("Escape")
        dialog.wait_for(state="hidden")
        # The failure groups name the pattern once and open the same details.
        group = p.locator("details.group").first
        assert "mindspore.nn" in group.locator("summary").inner_text()
        group.locator("button.open-detail").first.click()
        dialog.wait_for(state="visible")
        p.keyboard.press("Escape")
    assert page.errors == []


def _result(report_html: Path, case: str, backend: str) -> dict:
    report = json.loads((report_html.parent / "report.json").read_text())
    return next(r for r in report["results"] if r["case"] == case and r["backend"] == backend)


def test_detail_shows_the_framework_spread_of_a_real_bfloat16_case(browser, real_report):
    """tf.nn and torch.functional on one bfloat16 case: the detail says how far apart they are, in the
    words and numbers report.json holds, and whether the oracle passes both."""
    from harness.report.explain import spread_line
    report = json.loads((real_report.parent / "report.json").read_text())
    results = [r for r in report["results"] if r["case"] == "bf16-spread"]
    spread = results[0].get("spread")
    if spread is None:
        pytest.skip("fewer than two frameworks installed: no spread to show")
    assert "numpy" not in spread["frameworks"]               # in-house kernels are not a framework pair
    verdicts = {r["backend"]: r["verdict"] for r in results}
    page = Page(browser, real_report)
    p = page.page
    p.click("td.case:text-is('bf16-spread')")
    dialog = p.locator("dialog#detail")
    dialog.wait_for(state="visible")
    block = dialog.locator(".spread")
    line = block.locator("p.spread-line").inner_text()
    assert line == spread_line(spread, verdicts)
    assert line.startswith(" vs ".join(spread["pair"]) + ": ")
    both = all(verdicts[b] == "pass" for b in spread["pair"])
    assert line.endswith("both within the oracle's bound") == both
    assert block.locator("table.kv tr:has(th:text-is('tighter_ratio')) td").inner_text() == \
        str(spread["tighter_ratio"])
    p.screenshot(path=str(SHOTS / "report-spread.png"))
    assert page.errors == []


def test_registry_entries_link_to_their_evidence(browser, tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reports import record, report_of
    from harness.report import html
    link = "https://example.org/findings#f2"
    path = html.write(report_of([record(case="known", verdict="xfail", original_verdict="value_mismatch",
                                        divergence={"id": "F2", "reason": "zeros", "link": link})]), tmp_path)
    page = Page(browser, path)
    p = page.page
    p.click("td.case >> nth=0")
    anchor = p.locator("dialog#detail p.registry.divergence a")
    assert anchor.get_attribute("href") == link and anchor.inner_text() == "F2"
    assert "known divergence F2: zeros" in p.locator("dialog#detail p.registry.divergence").inner_text()
    assert page.errors == []


def test_strings_from_case_files_are_inert(browser, tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reports import XSS, _hostile_report
    from harness.report import html
    path = html.write(_hostile_report(), tmp_path)
    page = Page(browser, path)
    p = page.page
    p.click("td.case >> nth=0")
    dialog = p.locator("dialog#detail")
    dialog.wait_for(state="visible")
    assert XSS in p.locator("#detail-title").inner_text()           # shown as text ...
    assert XSS in dialog.inner_text()
    assert p.evaluate("window.__pwned") is None                        # ... never run
    assert p.locator("img[src='x']").count() == 0 and p.locator("#detail-body script").count() == 0
    assert dialog.locator("p.repro").count() == 0                      # the javascript: link was dropped
    assert dialog.locator("p.registry a").count() == 0                 # ... and the registry's is text only
    assert page.errors == []                                           # not even a CSP violation to report
    p.screenshot(path=str(SHOTS / "report-escaping.png"))


def test_ten_thousand_results_open_fast(browser, tmp_path):
    from report_scale import synthetic_report
    from harness.report import html
    report = synthetic_report(10_000, tmp_path)
    path = html.write(report, tmp_path)
    size = path.stat().st_size
    assert size < 15e6, size
    timings = []
    for _ in range(2):
        page = Page(browser, path)
        timings.append(page.open_s)
        assert page.errors == [] and page.count() == 2000
        assert page.rows() < 200                                       # only the rows in view are in the DOM
        page.page.click("#f-failing")
        assert 0 < page.count() < 2000
        page.page.close()
    assert min(timings) < 2.0, timings
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "report-scale-test.json").write_text(json.dumps(
        {"results": 10_000, "html_bytes": size, "open_s": timings}, indent=1) + "\n")


def test_the_detail_links_the_matching_or_resembling_registry_entry(browser, tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reports import record, report_of
    from harness.report import html
    evidence = (ROOT / "docs" / "findings.md").as_uri()
    near = record(case="near", verdict="value_mismatch", reason="3% outside the bound",
                  resembles={"id": "F2-x", "link": "docs/findings.md#f2", "href": evidence + "#f2",
                             "failed_conditions": ["bias"]})
    known = record(case="known", verdict="xfail", original_verdict="value_mismatch",
                   divergence={"id": "F1-y", "reason": "a known one", "link": "x", "href": "javascript:alert(1)"})
    path = html.write(report_of([near, known]), tmp_path)
    page = Page(browser, path)
    p, dialog = page.page, page.page.locator("dialog#detail")
    p.click("td.case:text-is('near')")
    dialog.wait_for(state="visible")
    note = dialog.locator("p.registry-note")
    assert note.inner_text() == "resembles known divergence F2-x (differs in: bias)"
    assert note.locator("a").get_attribute("href") == evidence + "#f2"
    p.keyboard.press("Escape")
    p.click("td.case:text-is('known')")
    dialog.wait_for(state="visible")
    assert dialog.locator("p.registry-note").inner_text() == "known divergence F1-y: a known one (x)"
    assert dialog.locator("p.registry-note a").count() == 0          # a javascript: href is not a link
    assert page.errors == []


def test_gradient_results_are_sub_rows_that_filter_search_and_open(browser, tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_report_gradients import CALL, results
    from test_reports import report_of
    from harness.report import html
    page = Page(browser, html.write(report_of(results()), tmp_path))
    p = page.page
    labels = p.locator("#matrix-body tr[data-case] td.case").all_inner_texts()
    assert labels == ["f2", "f2 · ∂x", "f2 · ∂w", "f2 · ∂b", "broken · ∂x"]
    assert p.locator("#matrix-body tr.grad-row").count() == 4
    cell = p.locator("tr[data-gradient='w'] td.cell[data-backend='mindspore.nn']")
    assert cell.get_attribute("data-verdict") == "value_mismatch" and "v-value_mismatch" in cell.get_attribute("class")
    p.fill("#f-search", "f*")                                  # a glob on the case id keeps its gradient rows
    p.wait_for_selector("#matrix-count[data-count='4']")
    p.fill("#f-search", "∂x")
    p.wait_for_selector("#matrix-count[data-count='2']")
    p.click("#f-reset")
    p.select_option("select[data-param='gradient']", label="forward")
    assert page.count() == 1 and labels[0] == p.locator("#matrix-body td.case").inner_text()
    p.select_option("select[data-param='gradient']", label="∂w")
    assert page.count() == 1
    p.click("#matrix-body td.cell[data-backend='mindspore.nn']")
    dialog = p.locator("dialog#detail")
    dialog.wait_for(state="visible")
    assert p.locator("#detail-title").inner_text() == "f2 · ∂w"
    assert CALL in dialog.locator(".backend-block.focus pre code").all_inner_texts()
    p.keyboard.press("Escape")
    p.click("#f-reset")
    p.click("tr[data-gradient='x'] td.cell[data-backend='torch.functional'] >> nth=1")
    assert "the forward call itself failed" in dialog.inner_text()
    assert page.errors == []
    p.screenshot(path=str(SHOTS / "report-gradients.png"))
