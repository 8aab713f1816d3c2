"""``conform bench --throughput`` (harness/throughput.py) and the ``timing`` record of a run (harness/timing.py)."""

from __future__ import annotations

import json

from harness.throughput import ThroughputRun, lines, record


def test_throughput_runs_report_their_timing_and_the_memory_ratio(tmp_path):
    runs = [ThroughputRun("fuzz-20", (), "numpy", fuzz_cases=20), ThroughputRun("fuzz-40", (), "numpy",
                                                                                fuzz_cases=40)]
    bench = record(tmp_path, {"schema": "conform.bench/3", "results": []}, runs, log=lambda line: None)
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written == json.loads(json.dumps(bench))
    small, large = written["throughput"]["runs"]
    assert small["status"] == large["status"] == "ok"
    for row, cases in ((small, 20), (large, 40)):
        timing = row["timing"]
        assert timing["results"] == timing["calls"] == cases      # one numpy call per case, forward only
        assert timing["backends"]["numpy"]["calls"] == cases
        assert 0 < timing["native_s"] <= timing["worker_s"] < timing["wall_s"]
        assert 0 < timing["cpu_s"] == timing["backends"]["numpy"]["cpu_s"]
        assert abs(timing["cores_bound_s"] - timing["cpu_s"] / min(timing["jobs"], timing["cores"])) <= 1e-3
        assert timing["lower_bound_s"] == timing["cores_bound_s"]
        assert timing["busiest_backend"] == "numpy"
        # One numpy worker answers one call at a time: the run cannot beat its own time.
        assert timing["wall_over_bound"] > 1 and timing["parent_cpu_s"] > 0
        # The whole-life peak includes writing the reports, after timing's own figure was taken.
        assert row["peak_mib"] >= timing["parent_peak_mib"] > 20
    ratio = large["peak_mib"] / small["peak_mib"]
    assert written["throughput"]["memory_ratio"] == round(ratio, 3)
    # The case files are real fuzz cases, in files of one size, and the run's report set is there.
    assert len(list((tmp_path / "throughput" / "fuzz-40" / "cases").glob("*.yaml"))) == 1
    assert (tmp_path / "throughput" / "fuzz-40" / "report" / "report.json").exists()
    text = "\n".join(lines(written["throughput"]))
    assert "fuzz-40: 40 results" in text and "parent peak memory" in text


def test_a_broken_run_is_reported_not_raised(tmp_path):
    runs = [ThroughputRun("missing", (str(tmp_path / "no-such-cases"),), "numpy")]
    bench = record(tmp_path, {"results": []}, runs, log=lambda line: None)
    row = bench["throughput"]["runs"][0]
    assert row["status"] == "failed" and row["exit_code"] == 2 and "no-such-cases" in row["reason"]
