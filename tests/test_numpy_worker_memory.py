"""The numpy backend's worker process: it keeps freed memory for its next oracle call (Note [Freed memory kept for
reuse] in ``harness/backends/numpy_ref.py``), counted in page faults in a fresh process of its own, and its BLAS
threads sleep as soon as a product ends (Note [BLAS threads that sleep]), counted in the worker's CPU time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Three 4 MiB blocks freed together, ten times over, after two calls that set glibc's thresholds: by default
# the heap's free top (12 MiB) is above the trim threshold (twice the largest block freed, 8 MiB), goes back
# to the kernel and is faulted in again by the next call.
CALLS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from harness.backends.numpy_ref import NumpyBackend
    if sys.argv[1] == "worker":
        NumpyBackend().setup()
    def call():
        blocks = [np.ones(1 << 19) for _ in range(3)]
        del blocks
    call(); call()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        call()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 10)
""")


def _faults_per_call(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CALLS, mode], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, counted by Linux's rusage")
def test_the_numpy_worker_reuses_freed_memory_without_page_faults():
    pages = 3 * (4 << 20) // 4096
    assert _faults_per_call("default") > pages // 10        # the case the setting is for: pages faulted again
    assert _faults_per_call("worker") < pages // 100


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")     # utime + stime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU time read from Linux's /proc")
@pytest.mark.parametrize("users_value", [None, "28"])
def test_the_numpy_workers_blas_threads_sleep_after_a_product(users_value, monkeypatch):
    from harness.backends import backend_class
    from harness.bench import _call
    from harness.cases import load_suite
    from harness.worker import worker_for
    if users_value is None:
        monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", users_value)
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: BLAS has no threads to share a product")
    case = load_suite([ROOT / "benchmarks" / "conv2d.yaml"])[1]          # b2: one image of one group
    worker = worker_for("numpy")
    assert worker.start(), worker.setup_error
    try:
        pid = worker.process.pid
        with open(f"/proc/{pid}/environ", "rb") as handle:
            variables = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
        assert variables[b"OPENBLAS_THREAD_TIMEOUT"] == (users_value or backend_class("numpy")
                                                         .worker_variables["OPENBLAS_THREAD_TIMEOUT"]).encode()
        if users_value is not None:
            return                                      # the user's setting is theirs: nothing more to check
        assert isinstance(worker.bench(_call(case, "float64"), 1, 3, 120.0, 0.0), list)
        before = _cpu_seconds(pid)
        time.sleep(0.3)
        # OpenBLAS's default (2^28 cycles) spins a thread for ~0.1 s after the last product: measured 0.100 s.
        assert _cpu_seconds(pid) - before < 0.03
    finally:
        worker.stop()
