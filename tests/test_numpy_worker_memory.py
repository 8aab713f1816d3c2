"""The numpy backend's worker keeps freed memory for its next oracle call (Note [Freed memory kept for reuse] in
``harness/backends/numpy_ref.py``): counted in page faults, in a fresh process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
