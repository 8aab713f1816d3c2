"""Shared helpers for tests that drive the real ``conform`` command line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def conform(*args, cwd=ROOT, timeout=900, env=None) -> subprocess.CompletedProcess:
    """Run ``python -m harness ARGS`` and capture its output."""
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def start_conform(*args, cwd=ROOT, env=None) -> subprocess.Popen:
    """Start ``python -m harness ARGS`` in the background (for signals and kills)."""
    return subprocess.Popen([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def write(path: Path, text: str) -> Path:
    """Write a dedented case file and return its path."""
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def wait_for_results(journal: Path, count: int, timeout_s: float = 300) -> None:
    """Wait until a run's results.jsonl holds ``count`` results."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= count:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{journal} did not reach {count} results in {timeout_s} s")


def run_tensorflow(script: str) -> dict:
    """Run ``script`` in a fresh process with TensorFlow's stock (non-oneDNN) CPU kernels."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(f"tensorflow unusable: {result['skip']}")
    return result


def run_standalone_program(tmp_path: Path, program, arrays: dict):
    """Run a backend's ``Program`` as a reproducer renders it (embedded sources, conform's imports dropped) in
    an isolated interpreter where conform cannot be imported; returns its output array."""
    import numpy as np
    from harness.backends import program as programs
    np.savez(tmp_path / "inputs.npz", **{name: arrays[name] for name in program.operands})
    # conform's editable install puts it on even an isolated interpreter's path: take it off by hand.
    script = ["import sys", "sys.modules['harness'] = None", "import numpy as np", "DATA = np.load('inputs.npz')"]
    script += [f"{name} = DATA[{name!r}]" for name in program.operands]
    script += programs.prelude(program) + programs.lines(program)
    script += [f"np.save('y.npy', np.asarray({program.output}))"]
    (tmp_path / "repro.py").write_text("\n".join(script) + "\n")
    done = subprocess.run([sys.executable, "-I", "repro.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(tmp_path / "y.npy")
