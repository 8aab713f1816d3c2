"""The ``tf.keras`` backend through the real Keras 3 on TensorFlow (harness/backends/tf_keras.py).

One subprocess (Keras imports TensorFlow, which this process must not) runs the
adapter on the cases below and prints, per case, the outcome, the native call
and its distance from the float64 oracle. The checks: Keras' own parameters are
used where they mean the canonical concept (``output_padding=None`` for 'same',
``0`` for a 'valid' whose kernel is below the stride, Keras' ``output_padding``
for ``size_rule: keras``), emulation is marked and says how, the kernel layouts
are Keras' (the values match the oracle), gaps are ``unsupported`` with a reason,
and F9 (docs/findings.md) still reproduces.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None or importlib.util.find_spec("tensorflow")
                                is None, reason="keras/tensorflow not installed")

CASES = {"conv2d_transpose": """
  - {id: t-keras-same-op, input: [1, 3, 5, 6], out_channels: 4, kernel_size: 3, stride: 2,
     padding: same, output_padding: 1, size_rule: keras, bias: true}
  - {id: t-same, input: [1, 3, 5, 6], out_channels: 4, kernel_size: [3, 2], stride: 2,
     padding: same, layout: NHWC}
  - {id: t-valid-below-stride, input: [1, 3, 5, 6], out_channels: 2, kernel_size: 1,
     stride: 3, padding: valid}
  - {id: t-explicit, input: [1, 3, 5, 6], out_channels: 2, kernel_size: 3, stride: 2,
     padding: [1, 0, 2, 1], output_padding: 1, bias: true}
  - {id: t-groups, input: [1, 4, 5, 6], out_channels: 2, kernel_size: 3, groups: 2}
  - {id: t-float64-nchw, input: [1, 3, 5, 6], out_channels: 2, kernel_size: 3, stride: 2,
     padding: same, dtype: float64}
  - {id: t-output-shape, input: [1, 3, 5, 6], out_channels: 2, kernel_size: 3, stride: 2,
     padding: same, output_shape: [9, 11]}
""", "conv2d": """
  - {id: t-conv2d-groups-nhwc, input: [2, 7, 8, 4], layout: NHWC, out_channels: 6, kernel_size: [3, 2],
     groups: 2, stride: 2, padding: same, bias: true}
  - {id: t-conv2d-explicit, input: [1, 3, 7, 8], out_channels: 4, kernel_size: 3, padding: [1, 0, 2, 1]}
  - {id: t-f9-bias-on-width, input: [1, 3, 7, 8], out_channels: 3, kernel_size: 3, stride: 2,
     padding: valid, bias: true}
""", "avg_pool2d": """
  - {id: t-avg-count-pad-same, input: [1, 2, 5, 6], kernel_size: 3, stride: 2, padding: same,
     count_include_pad: true}
""", "max_pool2d": """
  - {id: t-max-explicit, input: [1, 2, 5, 6], kernel_size: 3, stride: 2, padding: [1, 0, 1, 1]}
"""}

PROBE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    from harness import ops
    from harness.backends.tf_keras import TfKerasBackend
    from harness.cases import load_file
    from harness.runner import prepare
    backend = TfKerasBackend()
    backend.setup()
    out = {}
    for case in (c for path in sys.argv[1:] for c in load_file(Path(path))):
        call, _ = prepare(case)
        o = backend.run(call)
        row = {"status": o.status, "native_call": o.native_call, "emulated": o.emulated, "notes": o.notes,
               "detail": o.detail if o.status != "ok" else ""}
        if o.status == "ok":
            want = ops.get(case.op).oracle(call.params, call.arrays)
            row["shape_ok"] = list(o.output.shape) == list(want.shape)
            row["err"] = float(np.abs(o.output - want).max()) if row["shape_ok"] and want.size else 0.0
        out[case.id] = row
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    for op, cases in CASES.items():
        (folder / f"{op}.yaml").write_text(f"op: {op}\ncases:\n{cases.strip(chr(10))}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", PROBE, *(str(folder / f"{op}.yaml") for op in CASES)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(line[0][len("RESULT "):])


def ok(row, tol=1e-4):
    assert row["status"] == "ok", row
    assert row["shape_ok"] and row["err"] < tol, row


def test_keras_size_rule_is_keras_own_output_padding(results):
    row = results["t-keras-same-op"]
    ok(row)
    assert "keras.layers.Conv2DTranspose(" in row["native_call"]
    assert "padding='same'" in row["native_call"] and "output_padding=(1, 1)" in row["native_call"]
    assert "use_bias=True" in row["native_call"] and not row["emulated"]


def test_same_is_keras_default_output_padding_and_nhwc_is_channels_last(results):
    row = results["t-same"]
    ok(row)
    assert "output_padding=None" in row["native_call"] and "data_format='channels_last'" in row["native_call"]
    assert not row["emulated"]


def test_valid_with_kernel_below_stride_is_output_padding_zero(results):
    row = results["t-valid-below-stride"]
    ok(row)   # shape F = (5-1)*3 + 1 = 13, not Keras' default H*s = 15
    assert "padding='valid'" in row["native_call"] and "output_padding=(0, 0)" in row["native_call"]
    assert any("max(K, s)" in n for n in row["notes"]) and not row["emulated"]


def test_explicit_padding_is_valid_then_cropping2d_marked_emulated(results):
    row = results["t-explicit"]
    ok(row)
    # [1, 0, 2, 1] with op 1: the bottom row past F comes from output_padding (zeros + bias), the right
    # column is the one cropping 1 would drop: crop (1, 0) rows, (2, 0) columns.
    assert row["native_call"].startswith("keras.layers.Cropping2D(cropping=((1, 0), (2, 0))")
    assert "output_padding=(1, 0)" in row["native_call"] and row["emulated"]


def test_output_shape_is_the_output_padding_it_implies(results):
    row = results["t-output-shape"]
    ok(row)   # same, H=5, k=3, s=2: base (5-1)*2 + 1 = 9 -> op 0; W=6: 11 -> op 0
    assert "output_padding=(0, 0)" in row["native_call"] and row["emulated"]


def test_capability_gaps_are_unsupported_with_reasons(results):
    assert results["t-groups"]["status"] == "unsupported" and "no groups" in results["t-groups"]["detail"]
    assert results["t-max-explicit"]["status"] == "unsupported" and "−∞" in results["t-max-explicit"]["detail"]


def test_float64_nchw_conv_transpose_falls_back_to_channels_last(results):
    row = results["t-float64-nchw"]
    ok(row, 1e-12)
    assert row["emulated"] and row["notes"][0].startswith("NCHW emulated")
    assert "data_format='channels_last'" in row["native_call"]


def test_conv2d_kernel_layout_groups_and_zero_padding(results):
    row = results["t-conv2d-groups-nhwc"]
    ok(row)
    assert "groups=2" in row["native_call"] and not row["emulated"]
    row = results["t-conv2d-explicit"]
    ok(row)
    assert "keras.layers.ZeroPadding2D(padding=((1, 0), (2, 1))" in row["native_call"] and row["emulated"]


def test_avg_pool_count_include_pad_is_zero_padding_layer(results):
    row = results["t-avg-count-pad-same"]
    ok(row)
    assert "ZeroPadding2D" in row["native_call"] and "padding='valid'" in row["native_call"] and row["emulated"]


def test_f9_channels_first_bias_lands_on_the_width_still_reproduces(results):
    # Output (1, 3, 3, 3): W_out == filters, so keras.ops.add picks NHWC for the (1, 3, 1, 1) bias.
    # If this fails, Keras fixed it: drop F9 from cases/known_divergences.yaml and docs/findings.md.
    row = results["t-f9-bias-on-width"]
    assert row["status"] == "ok" and row["shape_ok"] and row["err"] > 1e-2, row
