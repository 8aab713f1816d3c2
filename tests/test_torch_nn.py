"""The ``torch.nn`` adapter through real PyTorch: modules built with the case's native parameters, the
canonical weights loaded, ``output_shape`` as ``forward(x, output_size=...)``, and finding TN1."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from harness.backends.program import render
from harness.cases import load_suite
from harness.runner import prepare
from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")


@pytest.fixture(scope="module")
def backends():
    from harness.backends.torch_functional import TorchFunctionalBackend
    from harness.backends.torch_nn import TorchNnBackend
    nn, functional = TorchNnBackend(), TorchFunctionalBackend()
    nn.setup()
    functional.setup()
    return nn, functional


def _call(op: str, case_id: str):
    case = next(c for c in load_suite([str(ROOT / "cases" / op)]) if c.id == case_id)
    return prepare(case)[0]


def test_output_shape_is_forward_output_size_natively(backends):
    nn, _ = backends
    outcome = nn.run(_call("conv2d_transpose", "output-shape-explicit[output_shape=8x10]"))
    assert outcome.status == "ok" and not outcome.emulated
    assert outcome.native_call.startswith("torch.nn.ConvTranspose2d(2, 3, (3, 3), stride=(2, 2)")
    assert "padding=(1, 1)" in outcome.native_call and "output_padding" not in outcome.native_call
    assert outcome.native_call.endswith("(x, output_size=[8, 10])")
    assert outcome.output.shape == (1, 3, 8, 10)


def test_loaded_weights_give_the_functional_answer_bit_for_bit(backends):
    nn, functional = backends
    call = _call("conv2d_transpose", "output-padding-bias[padding=1]")   # bias, output_padding, crops
    ours, theirs = nn.run(call), functional.run(call)
    assert ours.status == theirs.status == "ok"
    loads = [render(s.expr) for s in ours.program.steps if "load_state_dict" in render(s.expr)]
    assert loads == ["net.load_state_dict({'weight': weight, 'bias': bias})"]
    np.testing.assert_array_equal(ours.output, theirs.output)   # the same kernel, the same weights


def test_tn1_output_size_past_the_stride_is_rejected_where_output_padding_is_not(backends):
    nn, functional = backends
    call = _call("conv2d_transpose", "output-shape-explicit-dilation[output_shape=9x11]")
    rejected = nn.run(call)
    assert (rejected.status, rejected.origin) == ("error", "framework")
    assert "valid sizes range from [8, 10] to [8, 10]" in rejected.error_message
    assert functional.run(call).status == "ok"   # output_padding=(1, 1) with dilation 3 > stride 1


def test_strided_same_conv2d_is_emulated_stride_one_is_native(backends):
    nn, _ = backends
    native = nn.run(_call("conv2d", "conv2d-dilation[dilation=3,padding=same]"))
    assert native.status == "ok" and not native.emulated and "padding='same'" in native.native_call
    strided = nn.run(_call("conv2d", "conv2d-dilation-strided[stride=2,padding=same]"))
    assert strided.status == "ok" and strided.emulated and "padding='same'" not in strided.native_call


def test_out_channels_not_divisible_by_groups_is_posed_and_the_module_rejects_it(backends):
    nn, functional = backends
    case = next(c for c in load_suite([str(ROOT / "cases" / "conv2d_transpose" / "errors.yaml")])
                if c.resolved is None and c.canonical_params()["out_channels"] % c.canonical_params()["groups"]
                and not c.canonical_params()["input"][1] % c.canonical_params()["groups"])
    call = prepare(case)[0]
    outcome = nn.run(call)
    assert (outcome.status, outcome.origin) == ("error", "framework")
    assert "out_channels must be divisible by groups" in outcome.error_message
    assert functional.run(call).status == "unsupported"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_reports_the_accumulation_of_the_kernel_path(backends, dtype):
    import torch
    nn, _ = backends
    outcome = nn.run(_call("conv2d_transpose", f"dtype[dtype={dtype},stride=1,padding=valid]"))
    # oneDNN (float32 accumulation) where torch says the CPU supports the type; else the slow path, in the
    # type itself (an AMD Zen 5 has AVX512-BF16 but not AVX512-FP16).
    supported = getattr(torch.ops.mkldnn, f"_is_mkldnn_{'fp16' if dtype == 'float16' else 'bf16'}_supported")()
    assert outcome.status == "ok" and outcome.accumulation == ("float32" if supported else dtype)


def test_pooling_modules_take_count_include_pad_and_ceil_mode(backends):
    nn, _ = backends
    outcome = nn.run(_call("avg_pool2d", "avg-count-pad-explicit[stride=2,padding=1,count_include_pad=true]"))
    assert outcome.status == "ok"
    assert outcome.native_call.startswith("torch.nn.AvgPool2d(kernel_size=")
    assert "count_include_pad=True" in outcome.native_call and "ceil_mode=False" in outcome.native_call
