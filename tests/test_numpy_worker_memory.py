"""The numpy backend's worker process: it keeps freed memory for its next oracle call (Note [Freed memory kept for
reuse] in ``harness/backends/numpy_ref.py``), counted in page faults in a fresh process of its own, and its BLAS
threads sleep as soon as a product ends (Note [BLAS threads that sleep]), counted in CPU time in a process with the
worker's variables."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

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


def _last_printed(code: str, *args: str, variables: Optional[dict] = None) -> str:
    """What a fresh Python process running ``code`` (conform importable, ``variables`` set) printed last."""
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(variables or {})}, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def _faults_per_call(mode: str) -> int:
    return int(_last_printed(CALLS, mode))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, counted by Linux's rusage")
def test_the_numpy_worker_reuses_freed_memory_without_page_faults():
    pages = 3 * (4 << 20) // 4096
    assert _faults_per_call("default") > pages // 10        # the case the setting is for: pages faulted again
    assert _faults_per_call("worker") < pages // 100


SPIN = textwrap.dedent("""
    import os, time
    import numpy as np
    from threadpoolctl import threadpool_limits
    a, b = np.ones((128, 2304)), np.ones((2304, 64))
    with threadpool_limits(2, user_api="blas"):     # as the oracle shares a one-image product (two cores free)
        for _ in range(3):
            a @ b
    before = os.times()
    time.sleep(0.3)
    after = os.times()
    print(after.user + after.system - before.user - before.system)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/environ is Linux's")
@pytest.mark.parametrize("users_value", [None, "28"])
def test_the_numpy_worker_starts_with_its_blas_variables_unless_the_user_set_them(users_value, monkeypatch):
    from harness.backends import backend_class
    from harness.worker import worker_for
    if users_value is None:
        monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", users_value)
    worker = worker_for("numpy")
    assert worker.start(), worker.setup_error
    try:
        with open(f"/proc/{worker.process.pid}/environ", "rb") as handle:
            variables = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
    finally:
        worker.stop()
    declared = backend_class("numpy").worker_variables["OPENBLAS_THREAD_TIMEOUT"]
    assert variables[b"OPENBLAS_THREAD_TIMEOUT"] == (users_value or declared).encode()


def test_blas_threads_sleep_after_a_product_with_the_workers_variables(monkeypatch):
    """Note [BLAS threads that sleep]: OpenBLAS's default keeps a thread spinning ~0.1 s after a threaded product
    (measured 0.100 s of CPU in the next 0.3 s); with the numpy worker's variables, none."""
    from harness import envs
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    assert float(_last_printed(SPIN, variables=envs.launch("numpy").variables)) < 0.03
