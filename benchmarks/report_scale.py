"""How report.html scales: a synthetic 10,000-result report, its size, and its open time in Chromium.

Usage::

    .venv/bin/python benchmarks/report_scale.py [--results 10000] [--out reports/report-scale] [--repeats 3]

Builds a report.json the shape of a real run (5 backends, realistic
parameters, native calls, ~5 % failures that follow parameter patterns, a
|diff| heatmap PNG per value mismatch under repro/), renders report.html,
and opens it in headless Chromium (Debian's ``chromium`` driven by
Playwright, as the browser test does). "Open time" is from navigation start
to the page's script having built the matrix (``body[data-ready]``), the
moment a person can use it; it also times a filter and a scroll. Prints the
figures and writes them to ``OUT/report_scale.json``.

The targets (issue 5): opens in under 2 s, HTML under 15 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from harness.report import html, json_report  # noqa: E402
from harness.report.repro import heatmap_png, repro_dir  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BACKENDS = {"numpy": ("numpy", "2.4.6"), "numba": ("numba", "0.68.1"), "tf.nn": ("tensorflow", "2.21.0"),
            "torch.functional": ("torch", "2.13.0+cpu"), "mindspore.nn": ("mindspore", "2.10.0")}


def _params(rng: random.Random) -> dict:
    k = rng.choice([1, 2, 3, 4, 5])
    s = rng.choice([1, 2, 3])
    pad = rng.choice(["same", "valid", 0, 1, [1, 0, 2, 1]])
    op = rng.choice([0, 0, 0, 1]) if not isinstance(pad, str) and s > 1 else 0
    groups = rng.choice([1, 1, 1, 2])
    return {"input": [rng.choice([1, 2]), 4, rng.randint(4, 16), rng.randint(4, 16)],
            "layout": rng.choice(["NCHW", "NCHW", "NHWC"]), "out_channels": rng.choice([2, 4, 8]),
            "kernel_size": [k, k], "stride": [s, s],
            "padding": pad if isinstance(pad, (str, list)) else [pad] * 4, "output_padding": [op, op],
            "dilation": [rng.choice([1, 1, 2])] * 2, "groups": groups, "bias": rng.random() < 0.3,
            "output_shape": None}


def _verdict(backend: str, p: dict, dtype: str, rng: random.Random, extra: float) -> tuple[str, str]:
    if backend == "mindspore.nn" and dtype in ("float64", "bfloat16"):
        return "unsupported", f"MindSpore's CPU kernel has no {dtype} kernel"
    if backend == "tf.nn" and p["dilation"][0] > 1 and not isinstance(p["padding"], str):
        return "unsupported", "TensorFlow CPU kernel: Current implementation does not yet support dilation rates > 1"
    if backend == "mindspore.nn" and p["padding"] == "valid" and p["kernel_size"][0] < p["stride"][0]:
        return "shape_mismatch", "shape [2, 3, 14, 18] != expected [2, 3, 13, 17]"
    if backend == "mindspore.nn" and p["output_padding"][0] and any(p["padding"]):
        return "value_mismatch", "12.30% of elements outside the bound; worst at [0, 0, 0, 17] is 6.45e+05x its bound"
    if backend == "tf.nn" and rng.random() < 0.004:
        return "unexpected_error", "InvalidArgumentError: Conv2DSlowBackpropInput: Size of out_backprop doesn't match"
    if rng.random() < 0.002:
        return "crash", "worker killed by signal SIGSEGV"
    if backend != "numpy" and rng.random() < extra:
        return "value_mismatch", "3.10% of elements outside the bound; worst at [0, 1, 2, 3] is 2.5x its bound"
    return "pass", ""


def _native_call(backend: str, p: dict, dtype: str) -> str:
    if backend == "tf.nn":
        return (f"tf.nn.conv2d_transpose(x, filters, output_shape={[p['input'][0], p['out_channels'], 14, 18]}, "
                f"strides={p['stride']}, padding={p['padding'] if not isinstance(p['padding'], str) else repr(p['padding'].upper())}, "
                f"data_format='{p['layout']}', dilations={p['dilation']})")
    if backend == "torch.functional":
        return (f"torch.nn.functional.conv_transpose2d(x, weight, None, stride={p['stride']}, groups={p['groups']}, "
                f"dilation={p['dilation']}, padding=[1, 1], output_padding={p['output_padding']})")
    if backend == "mindspore.nn":
        return (f"mindspore.nn.Conv2dTranspose(4, {p['out_channels']}, kernel_size={p['kernel_size']}, "
                f"stride={p['stride']}, dilation={p['dilation']}, group={p['groups']}, pad_mode='pad', padding=1, "
                f"has_bias={p['bias']}, weight_init=weight, dtype=mindspore.{dtype})(x)")
    if backend == "numba":
        return "harness.ops.conv2d_transpose.numba_kernel.conv2d_transpose(x, w, b, stride=(2, 2), dilation=(1, 1), ...)"
    return f"harness.ops.conv2d_transpose.oracle.reference(params, arrays, dtype='{dtype}')"


def synthetic_report(n_results: int = 10_000, out: Path | None = None, seed: int = 0,
                     failure_rate: float = 0.05) -> dict:
    """A report.json dict of ``n_results`` results (5 backends); heatmaps written under ``out`` if given.

    Besides the parameter-pattern failures, each non-numpy result fails with probability ``failure_rate``.
    """
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    results = []
    n_cases = -(-n_results // len(BACKENDS))
    for i in range(n_cases):
        p = _params(rng)
        dtype = rng.choice(["float32", "float32", "float32", "float16", "bfloat16", "float64"])
        pad = p["padding"] if isinstance(p["padding"], str) else "x".join(map(str, p["padding"]))
        case = f"synthetic-{i:05d}[stride={p['stride'][0]},kernel_size={p['kernel_size'][0]},padding={pad}]"
        for backend in BACKENDS:
            if len(results) >= n_results:
                break
            verdict, reason = _verdict(backend, p, dtype, rng, failure_rate)
            ratio = rng.random() * 0.3 if verdict == "pass" else (6.45e5 if verdict == "value_mismatch" else None)
            metrics = None if ratio is None else {
                "max_abs_err": ratio * 1e-6, "max_rel_err": ratio * 1e-5, "max_ulp": ratio * 10,
                "mismatch_fraction": 0.0 if verdict == "pass" else 0.123, "worst_index": [0, 0, 0, 17],
                "bound_ratio": ratio, "nonfinite_mismatches": 0}
            record = {
                "case": case, "file": "cases/conv2d_transpose/synthetic.yaml", "line": 10 + i, "op": "conv2d_transpose",
                "params": p, "dtype": dtype, "backend": backend, "verdict": verdict, "reason": reason,
                "expected_shape": [p["input"][0], p["out_channels"], 14, 18],
                "actual_shape": None if verdict in ("unsupported", "crash", "unexpected_error") else
                [p["input"][0], p["out_channels"], 14, 18],
                "metrics": metrics,
                "tolerance": None if metrics is None else {"model": "error-bound", "dtype": dtype,
                                                           "unit_roundoff": 5.96e-08, "accumulation": dtype,
                                                           "accumulation_length": 36, "accumulation_factor": 1.4e-06,
                                                           "atol": 0.0},
                "error": {"type": "tensorflow.python.framework.errors_impl.InvalidArgumentError", "message": reason}
                if verdict == "unexpected_error" else None,
                "native_call": None if verdict in ("unsupported", "crash", "unexpected_error")
                else _native_call(backend, p, dtype),
                "emulated": backend == "torch.functional" and isinstance(p["padding"], str),
                "notes": ["padding 'same' expressed as padding=(1, 1), output_padding=(1, 1)"]
                if backend == "torch.functional" and isinstance(p["padding"], str) else [],
                "duration_ms": round(rng.random() * 5, 3), "source": None,
            }
            if verdict not in ("pass", "unsupported") and out is not None:
                folder = repro_dir(out, case, backend)
                folder.mkdir(parents=True, exist_ok=True)
                record["repro"] = (folder / "repro.py").relative_to(out.resolve()).as_posix()
                (folder / "repro.py").write_text("# synthetic\n")
                if verdict == "value_mismatch":
                    plane = nprng.random((14, 18)) * 1e-6
                    plane[-1, :] = nprng.random(18) * 8
                    plane[:, -1] = nprng.random(14) * 8
                    (folder / "diff.png").write_bytes(heatmap_png(plane))
                    record["heatmap"] = (folder / "diff.png").relative_to(out.resolve()).as_posix()
            results.append(record)

    class Run:
        pass

    run = Run()
    run.results, run.duration_s, run.incomplete, run.stale, run.created = results, 123.4, False, [], ""
    run.environment = {"python": sys.version.split()[0], "platform": "synthetic", "cpu": "synthetic",
                       "backends": {b: {"framework": f, "version": v, "available": True, "reason": ""}
                                    for b, (f, v) in BACKENDS.items()}}
    return json.loads(json.dumps(json_report.build(run)))


def open_in_browser(path: Path, repeats: int = 3) -> dict:
    """Median open time (navigation -> matrix built) and filter/scroll times in headless Chromium."""
    from playwright.sync_api import sync_playwright
    opens, in_page, filters, scrolls, errors = [], [], [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                start = time.perf_counter()
                page.goto(path.resolve().as_uri())
                page.wait_for_selector("body[data-ready='1']", state="attached")
                opens.append(time.perf_counter() - start)
                in_page.append(page.evaluate("performance.now()") / 1000)
                before = int(page.get_attribute("#matrix-count", "data-count"))
                start = time.perf_counter()
                page.select_option("select[data-param='padding']", label="valid")
                page.wait_for_selector(f"#matrix-count:not([data-count='{before}'])", state="attached")
                filters.append(time.perf_counter() - start)
                start = time.perf_counter()
                page.evaluate("document.getElementById('matrix-scroll').scrollTop = 1e6")
                page.wait_for_timeout(50)
                page.wait_for_selector("#matrix-body tr[data-case]")
                scrolls.append(time.perf_counter() - start)
                page.close()
        finally:
            browser.close()
    return {"open_s_median": statistics.median(opens), "open_s_all": opens,
            "ready_in_page_s_median": statistics.median(in_page), "filter_s_median": statistics.median(filters),
            "scroll_s_median": statistics.median(scrolls), "console_errors": errors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "report-scale")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--failure-rate", type=float, default=0.05,
                        help="extra value mismatches per non-numpy result, each with a heatmap (default 0.05)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = synthetic_report(args.results, args.out, failure_rate=args.failure_rate)
    json_report.write(report, args.out)
    built = time.perf_counter() - start
    start = time.perf_counter()
    path = html.write(report, args.out)
    rendered = time.perf_counter() - start
    figures = {"results": len(report["results"]), "failing": sum(r["verdict"] not in ("pass", "unsupported")
                                                                   for r in report["results"]),
               "html_bytes": path.stat().st_size, "html_mb": round(path.stat().st_size / 1e6, 2),
               "report_json_mb": round((args.out / "report.json").stat().st_size / 1e6, 2),
               "build_s": round(built, 2), "render_s": round(rendered, 2)}
    if Path(CHROMIUM).exists():
        figures.update(open_in_browser(path, args.repeats))
    else:
        figures["browser"] = f"skipped: {CHROMIUM} not installed (make test installs it)"
    (args.out / "report_scale.json").write_text(json.dumps(figures, indent=1) + "\n")
    for key, value in figures.items():
        print(f"{key:24} {value}")
    ok = figures["html_bytes"] < 15e6 and figures.get("open_s_median", 0) < 2.0 and not figures.get("console_errors")
    print("targets (open < 2 s, HTML < 15 MB, no console errors):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
