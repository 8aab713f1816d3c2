"""Adapter claims that must not go stale: what a backend declares unsupported really fails.

Each check runs the real framework in a subprocess (frameworks are imported
in their own process, as in a run) with the adapter's declaration bypassed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import sys
    from harness.backends import mindspore_nn
    from harness.cases import load_file
    from harness.runner import prepare
    from pathlib import Path
    mindspore_nn.UNSUPPORTED_DTYPES.clear()          # bypass the declaration
    backend = mindspore_nn.MindsporeNnBackend()
    backend.setup()
    path = Path(sys.argv[1])
    path.write_text('''op: conv2d_transpose
    cases:
      - id: probe
        input: [1, 2, 4, 4]
        out_channels: 2
        kernel_size: 3
        dtype: %s
    ''')
    call, _ = prepare(load_file(path)[0])
    outcome = backend.run(call)
    print(outcome.status, outcome.error_message)
""")


@pytest.mark.skipif(importlib.util.find_spec("mindspore") is None, reason="mindspore not installed")
@pytest.mark.parametrize("dtype, message", [
    ("float64", "must be a type of"),
    ("bfloat16", "bfloat16"),
])
def test_mindspore_unsupported_dtypes_really_fail(tmp_path, dtype, message):
    from harness.backends.mindspore_nn import UNSUPPORTED_DTYPES
    assert dtype in UNSUPPORTED_DTYPES
    proc = subprocess.run([sys.executable, "-c", PROBE % dtype, str(tmp_path / "probe.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("error"), proc.stdout + proc.stderr
    assert message in proc.stdout, proc.stdout   # the framework's own words, as the declaration quotes them


TF_PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from harness.backends.tf_nn import TfNnBackend
    from harness.cases import load_file
    from harness.runner import prepare
    backend = TfNnBackend()
    backend.setup()
    outcome = backend.run(prepare(load_file(Path(sys.argv[1]))[0])[0])
    print(outcome.status, outcome.detail)
""")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="tensorflow not installed")
@pytest.mark.parametrize("field, gap", [
    ("dilation: 2", "dilation rates larger than 1"),
    ("groups: 2", "grouped convolutions are not supported on CPU"),
])
def test_tensorflow_cpu_capability_gaps_are_reported_as_unsupported(tmp_path, field, gap):
    path = tmp_path / "probe.yaml"
    path.write_text("op: conv2d_transpose\ncases:\n  - id: probe\n    input: [1, 2, 4, 4]\n    out_channels: 2\n"
                    f"    kernel_size: 3\n    padding: 1\n    {field}\n")
    proc = subprocess.run([sys.executable, "-c", TF_PROBE, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert last.startswith("unsupported") and gap in last, proc.stdout + proc.stderr


def test_only_errors_raised_inside_the_native_region_count_as_the_frameworks_answer():
    from harness.backends.base import Backend, Call, Native
    from harness.compare import Reference, judge

    class Probe(Backend):
        id = "probe"
        framework = "probe"

        def conv2d_transpose(self, call):
            if call.case_id == "framework-rejects":
                with self.native():
                    raise ValueError("groups must divide channels")
            if call.case_id == "adapter-bug":
                raise KeyError("paddin")        # conform's own mistake, before any framework call
            return Native(self.timed(lambda: 1.0), "probe()")

    def call(case_id):
        return Call(op="conv2d_transpose", case_id=case_id, params={}, resolved=None, dtype="float32",
                    arrays={}, expects_error=True)

    backend = Probe()
    rejected, bug = backend.run(call("framework-rejects")), backend.run(call("adapter-bug"))
    assert (rejected.status, rejected.origin) == ("error", "framework")
    assert (bug.status, bug.origin) == ("error", "adapter")
    ref = Reference(output=None, magnitude=None)
    assert judge(rejected, ref, expects_error=True, dtype="float32").verdict == "pass"
    verdict = judge(bug, ref, expects_error=True, dtype="float32")
    assert verdict.verdict == "unexpected_error" and "conform bug" in verdict.reason
