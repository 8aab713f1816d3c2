"""``conform bench`` (harness/bench.py): what the parent does while a worker times its calls."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from harness import bench
from harness.cases import load_suite
from tests.helpers import ROOT


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_parent_prepares_calls_with_blas_on_one_thread(monkeypatch):
    """Note [A quiet parent]: OpenBLAS threads left spinning by the parent's oracle took a core from the
    worker's first timed calls. ``prepare`` must run with BLAS on one thread, whatever BLAS is set to."""
    if max(_blas_threads(), default=1) < 2:
        pytest.skip("BLAS runs on one thread here already: nothing for the bench to limit")
    seen = []
    real = bench.prepare

    def watched(case):
        seen.append(_blas_threads())
        return real(case)

    monkeypatch.setattr(bench, "prepare", watched)
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[0]
    call = bench._call(case, "float64")
    assert seen and all(threads == [1] * len(threads) for threads in seen), seen
    assert call.dtype == "float64" and case.dtype == "float32"     # the case itself is left as it was
    assert np.asarray(call.arrays["x"]).dtype == np.float64
