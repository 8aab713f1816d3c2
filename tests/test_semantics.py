"""Canonical semantics of conv2d_transpose (DESIGN.md §2): ``harness.ops.conv2d_transpose``.

Every expected number below is derived by hand in the comment next to it from
``K = d·(k−1)+1``, ``F = (H−1)·s + K``, ``H_out = F − pt − pb + op`` and
TensorFlow's SAME/VALID rule; none is computed with code from the module under
test.

``test_defaults_*`` guard the optional fields (``stride``, ``padding``,
``output_padding``, ``dilation``): pydantic does not run field validators on
defaults unless ``validate_default`` is set, and an unvalidated ``stride=1``
is an int that ``resolve`` cannot unpack.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest
from helpers import run_tensorflow
from pydantic import ValidationError

from harness.ops.conv2d_transpose.semantics import InvalidCall, Params, input_shapes, resolve

ROOT = Path(__file__).resolve().parents[1]

EXPLICIT_DEFAULTS = {"stride": 1, "padding": 0, "output_padding": 0, "dilation": 1}


def P(**kw) -> Params:
    return Params(**kw)


def R(**kw):
    return resolve(P(**kw))


def rejects(field: str, *needles: str, **kw) -> InvalidCall:
    with pytest.raises(InvalidCall) as info:
        R(**kw)
    exc = info.value
    assert exc.field == field, f"field {exc.field!r}, reason {exc.reason!r}"
    for needle in needles:
        assert needle in exc.reason, f"{needle!r} not in {exc.reason!r}"
    assert str(exc) == exc.reason
    return exc


# --------------------------------------------------------------------------- the seed page


def test_seed_example_1_explicit_zero_padding():
    # k=4, s=1: F = 15+4 = 19, 49+4 = 53; no crop.
    r = R(input=[1, 3, 16, 50], out_channels=64, kernel_size=4, stride=1, padding=[0, 0, 0, 0])
    assert r.output_shape == (1, 64, 19, 53)
    assert r.full_hw == (19, 53)
    assert r.crops == (0, 0, 0, 0)
    assert r.output_padding == (0, 0)
    # TF's call in the example passes output_shape=[.., 19, 53, ..] with the same padding.
    r2 = R(input=[1, 3, 16, 50], out_channels=64, kernel_size=4, padding=[0, 0, 0, 0], output_shape=[19, 53])
    assert r2.output_shape == (1, 64, 19, 53) and r2.output_padding == (0, 0)


def test_seed_example_2_same():
    # k=5, s=1: F = 15+5 = 20 and 49+5 = 54; H_out = 16, 50; pad_needed = 4, 4 -> 2/2, 2/2.
    for extra in ({}, {"output_shape": [16, 50]}):
        r = R(input=[1, 3, 16, 50], out_channels=64, kernel_size=5, stride=1, padding="same", **extra)
        assert r.output_shape == (1, 64, 16, 50)
        assert r.full_hw == (20, 54)
        assert r.crops == (2, 2, 2, 2)
        assert r.output_padding == (0, 0)


def test_seed_example_3_valid():
    # k=5, s=3: F = 15·3+5 = 50 and 49·3+5 = 152; no crop.
    for extra in ({}, {"output_shape": [50, 152]}):
        r = R(input=[1, 3, 16, 50], out_channels=64, kernel_size=5, stride=3, padding="valid", **extra)
        assert r.output_shape == (1, 64, 50, 152)
        assert r.crops == (0, 0, 0, 0)
        assert r.output_padding == (0, 0)


# --------------------------------------------------------------------------- explicit padding


def test_explicit_four_list_is_top_bottom_left_right():
    # H=5, W=6, k=3, s=2: F = 4·2+3 = 11, 5·2+3 = 13; H_out = 11-1-2 = 8, W_out = 13-0-3 = 10.
    r = R(input=[2, 3, 5, 6], out_channels=4, kernel_size=3, stride=2, padding=[1, 2, 0, 3])
    assert r.crops == (1, 2, 0, 3)
    assert r.full_hw == (11, 13)
    assert r.out_hw == (8, 10)
    assert r.output_shape == (2, 4, 8, 10)


def test_explicit_int_padding_applies_to_all_four_sides():
    # H=5, k=3, s=2: F = 11, H_out = 11-2 = 9; W=4: F = 3·2+3 = 9, W_out = 7.
    r = R(input=[1, 1, 5, 4], out_channels=1, kernel_size=3, stride=2, padding=1)
    assert r.crops == (1, 1, 1, 1)
    assert r.out_hw == (9, 7)


def test_rectangular_kernel_stride_dilation_per_axis():
    # H=4: kh=3, sh=2, dh=2 -> K = 5, F = 3·2+5 = 11; W=3: kw=2, sw=1, dw=3 -> K = 4, F = 2+4 = 6.
    r = R(input=[1, 2, 4, 3], out_channels=2, kernel_size=[3, 2], stride=[2, 1], dilation=[2, 3], padding=0)
    assert r.kernel == (3, 2) and r.stride == (2, 1) and r.dilation == (2, 3)
    assert r.full_hw == (11, 6)
    assert r.out_hw == (11, 6)


def test_output_padding_extends_bottom_and_right():
    # H=5, k=3, s=2: F = 11; pads 1+1 -> 9, +op 1 -> 10. W=4: F = 9; pads 1+1 -> 7, +op 0 -> 7.
    r = R(input=[1, 1, 5, 4], out_channels=1, kernel_size=3, stride=2, padding=1, output_padding=[1, 0])
    assert r.output_padding == (1, 0)
    assert r.crops == (1, 1, 1, 1)            # the crop before is unchanged
    assert r.out_hw == (10, 7)


def test_output_padding_allowed_below_dilation_even_if_not_below_stride():
    # PyTorch's rule: op < stride OR op < dilation. s=1, d=3: op=2 is allowed.
    # H=3, k=2, d=3: K = 4, F = 2+4 = 6, H_out = 6+2 = 8.
    r = R(input=[1, 1, 3, 3], out_channels=1, kernel_size=2, stride=1, dilation=3, output_padding=2)
    assert r.out_hw == (8, 8)


def test_explicit_output_shape_picks_output_padding():
    # H=5, k=3, s=2, pads 1+1: F-2 = 9; reachable 9..10 (op < 2).
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding=1, output_shape=[10, 9])
    assert r.out_hw == (10, 9)
    assert r.output_padding == (1, 0)
    assert r.crops == (1, 1, 1, 1)


@pytest.mark.parametrize("out", [8, 11])
def test_explicit_output_shape_unreachable(out):
    exc = rejects("output_shape", "not reachable", "9..10",
                  input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding=1, output_shape=[out, 9])
    assert str(out) in exc.reason and "height" in exc.reason


def test_explicit_output_shape_unreachable_reports_width_axis():
    # W=4, k=3, s=2, pads 1+1: F-2 = 7; reachable 7..8.
    exc = rejects("output_shape", "width", "7..8",
                  input=[1, 1, 5, 4], out_channels=1, kernel_size=3, stride=2, padding=1, output_shape=[9, 6])
    assert "6" in exc.reason


# --------------------------------------------------------------------------- same


def test_same_even_padding_stride_1():
    # H=6, k=3, s=1: F = 8, H_out = 6, needed 2 -> 1/1.
    r = R(input=[1, 1, 6, 6], out_channels=1, kernel_size=3, stride=1, padding="same")
    assert r.crops == (1, 1, 1, 1) and r.out_hw == (6, 6)


def test_same_odd_padding_stride_1_extra_row_at_bottom():
    # H=6, k=4, s=1: F = 5+4 = 9, H_out = 6, pad_needed = 3 -> top 1, bottom 2.
    r = R(input=[1, 1, 6, 6], out_channels=1, kernel_size=4, stride=1, padding="same")
    assert r.full_hw == (9, 9)
    assert r.crops == (1, 2, 1, 2)
    assert r.out_hw == (6, 6)
    assert r.output_padding == (0, 0)


def test_same_stride_2_even_and_odd():
    # H=5, k=4, s=2: F = 8+4 = 12, H_out = 10, needed 2 -> 1/1.
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=4, stride=2, padding="same")
    assert r.full_hw == (12, 12) and r.crops == (1, 1, 1, 1) and r.out_hw == (10, 10)
    # H=5, k=3, s=2: F = 11, H_out = 10, needed 1 -> top 0, bottom 1.
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding="same")
    assert r.crops == (0, 1, 0, 1) and r.out_hw == (10, 10)
    # H=5, k=5, s=2: F = 13, H_out = 10, needed 3 -> top 1, bottom 2.
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=5, stride=2, padding="same")
    assert r.crops == (1, 2, 1, 2) and r.out_hw == (10, 10)


def test_same_mixed_axes():
    # H=5, kh=5, sh=2: F = 13, out 10, needed 3 -> 1/2.  W=7, kw=2, sw=3: F = 18+2 = 20, out 21,
    # needed max(0, -1) = 0 -> 0/0 and the extra column past F is a zero column (op = 1).
    r = R(input=[1, 1, 5, 7], out_channels=1, kernel_size=[5, 2], stride=[2, 3], padding="same")
    assert r.full_hw == (13, 20)
    assert r.crops == (1, 2, 0, 0)
    assert r.out_hw == (10, 21)
    assert r.output_padding == (0, 1)


def test_same_kernel_smaller_than_stride_rows_past_full_output():
    # H=4, k=1, s=3: F = 9+1 = 10, H_out = 12, needed 0; two rows past F.
    r = R(input=[1, 1, 4, 4], out_channels=1, kernel_size=1, stride=3, padding="same")
    assert r.crops == (0, 0, 0, 0)
    assert r.out_hw == (12, 12)
    assert r.output_padding == (2, 2)


def test_same_with_dilation():
    # H=4, k=3, d=2: K = 5, s=1: F = 3+5 = 8, H_out = 4, needed 4 -> 2/2.
    r = R(input=[1, 1, 4, 4], out_channels=1, kernel_size=3, dilation=2, padding="same")
    assert r.crops == (2, 2, 2, 2) and r.out_hw == (4, 4)


@pytest.mark.parametrize("out, crops", [(9, (1, 1)), (10, (0, 1))])
def test_same_with_output_shape(out, crops):
    # H=5, k=3, s=2: F = 11; ceil(out/2) == 5 <=> out in 9..10; needed = 11-out.
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding="same", output_shape=[out, 10])
    assert r.out_hw == (out, 10)
    assert r.crops[:2] == crops
    assert r.output_padding == (0, 0)


@pytest.mark.parametrize("out", [8, 11])
def test_same_output_shape_unreachable(out):
    rejects("output_shape", "'same'", "9..10", str(out),
            input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding="same", output_shape=[out, 10])


# --------------------------------------------------------------------------- same_lower (ONNX SAME_LOWER)


def test_same_lower_odd_crop_at_top_left():
    # H=5, k=3, s=2: F = 11, H_out = 10, needed 1 -> top 1, bottom 0 (same: 0/1).
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding="same_lower")
    assert r.crops == (1, 0, 1, 0) and r.out_hw == (10, 10) and r.output_padding == (0, 0)
    # H=6, k=4, s=1: F = 9, H_out = 6, needed 3 -> top 2, bottom 1 (same: 1/2).
    r = R(input=[1, 1, 6, 6], out_channels=1, kernel_size=4, padding="same_lower")
    assert r.crops == (2, 1, 2, 1) and r.out_hw == (6, 6)


def test_same_lower_even_crop_and_rows_past_full_output_as_same():
    # Even needed: H=5, k=4, s=2: F = 12, out 10, needed 2 -> 1/1, as 'same'.
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=4, stride=2, padding="same_lower")
    assert r.crops == (1, 1, 1, 1)
    # k=1, s=3, H=4: F = 10, out 12, nothing to crop, two zero rows past F, as 'same'.
    r = R(input=[1, 1, 4, 4], out_channels=1, kernel_size=1, stride=3, padding="same_lower")
    assert r.crops == (0, 0, 0, 0) and r.out_hw == (12, 12) and r.output_padding == (2, 2)


@pytest.mark.parametrize("out, crops", [(9, (1, 1)), (10, (1, 0))])
def test_same_lower_with_output_shape(out, crops):
    # H=5, k=3, s=2: F = 11; needed = 11 − out: 2 -> 1/1, 1 -> 1/0 (ONNX: pads[start] = total − total/2).
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding="same_lower", output_shape=[out, 10])
    assert r.crops[:2] == crops and r.out_hw == (out, 10)


@pytest.mark.parametrize("out", [8, 11])
def test_same_lower_output_shape_unreachable(out):
    rejects("output_shape", "'same_lower'", "9..10", str(out), input=[1, 1, 5, 5], out_channels=1, kernel_size=3,
            stride=2, padding="same_lower", output_shape=[out, 10])


def test_same_lower_rejects_output_padding():
    rejects("output_padding", "same_lower", input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2,
            padding="same_lower", output_padding=1)


# --------------------------------------------------------------------------- valid


def test_valid_default_is_full_output():
    # H=5, k=3, s=2: F = 11; W=3, k=3, s=2: F = 7.
    r = R(input=[1, 1, 5, 3], out_channels=1, kernel_size=3, stride=2, padding="valid")
    assert r.crops == (0, 0, 0, 0) and r.out_hw == (11, 7) and r.output_padding == (0, 0)


def test_valid_with_larger_output_shape_adds_zero_rows():
    # H=5, k=3, s=2: F = 11; reachable 11..12 -> 12 keeps one row past F.
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding="valid", output_shape=[12, 11])
    assert r.crops == (0, 0, 0, 0)
    assert r.out_hw == (12, 11)
    assert r.output_padding == (1, 0)


@pytest.mark.parametrize("out", [10, 13, 1])
def test_valid_output_shape_unreachable(out):
    rejects("output_shape", "'valid'", "11..12",
            input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, padding="valid", output_shape=[out, 11])


# --------------------------------------------------------------------------- invalid calls


def test_input_channels_not_divisible_by_groups():
    rejects("groups", "input channels 3", "groups 2",
            input=[1, 3, 4, 4], out_channels=4, kernel_size=3, groups=2)


def test_out_channels_not_divisible_by_groups():
    rejects("groups", "out_channels 3", "groups 2",
            input=[1, 4, 4, 4], out_channels=3, kernel_size=3, groups=2)


@pytest.mark.parametrize("stride, dilation, op, limit", [(2, 1, 2, 2), (1, 1, 1, 1), (3, 2, 3, 3), (1, 2, 2, 2)])
def test_output_padding_not_below_max_stride_dilation(stride, dilation, op, limit):
    rejects("output_padding", f"max(stride, dilation) = {limit}",
            input=[1, 1, 4, 4], out_channels=1, kernel_size=3, stride=stride, dilation=dilation,
            output_padding=op)


def test_output_padding_checked_per_axis():
    # (op_h, op_w) = (1, 2) with stride (2, 2): only the width is invalid.
    exc = rejects("output_padding", "width",
                  input=[1, 1, 4, 4], out_channels=1, kernel_size=3, stride=2, output_padding=[1, 2])
    assert "height" not in exc.reason


@pytest.mark.parametrize("padding, out", [([1, 1, 0, 0], 0), ([2, 1, 0, 0], -1), ([0, 5, 0, 0], -3)])
def test_padding_removing_the_whole_output(padding, out):
    # H=1, k=2, s=1: F = 2; H_out = 2 - pt - pb.
    rejects("padding", f"would be {out}", "full output of 2",
            input=[1, 1, 1, 4], out_channels=1, kernel_size=2, padding=padding)


def test_padding_larger_than_full_output_rescued_by_output_padding_is_positive():
    # H=1, k=1, s=2: F = 1; pads 1+0 -> 0, op 1 -> 1 (a row past F, zeros). Allowed as in PyTorch.
    r = R(input=[1, 1, 1, 1], out_channels=1, kernel_size=1, stride=2, padding=[1, 0, 0, 0], output_padding=[1, 0])
    assert r.out_hw == (1, 1)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_output_padding_with_same_or_valid(padding):
    rejects("output_padding", "does not combine", f"'{padding}'", "output_shape",
            input=[1, 1, 4, 4], out_channels=1, kernel_size=3, stride=2, padding=padding, output_padding=1)


def test_output_padding_and_output_shape_together():
    rejects("output_shape", "not both",
            input=[1, 1, 4, 4], out_channels=1, kernel_size=3, stride=2, padding=0, output_padding=1,
            output_shape=[10, 10])


# --------------------------------------------------------------------------- Params validation


@pytest.mark.parametrize("fields", [
    {"stride": 0}, {"stride": -1}, {"kernel_size": 0}, {"dilation": [1, 0]}, {"output_padding": -1},
    {"padding": -1}, {"padding": [1, 2, 3]}, {"padding": [0, 0, -1, 0]}, {"padding": "SAME"},
    {"padding": "full"}, {"stride": "2"}, {"stride": True}, {"stride": [1, 2, 3]}, {"kernel_size": 2.0},
    {"input": [1, 3, 4]}, {"input": [1, 0, 4, 4]}, {"input": [-1, 3, 4, 4]}, {"groups": 0},
    {"out_channels": 0}, {"output_shape": [4]}, {"output_shape": [0, 4]}, {"layout": "NWHC"},
    {"unknown": 1}, {"kernel_size": 1 << 21},
])
def test_params_rejects_malformed_fields(fields):
    base = {"input": [1, 2, 4, 4], "out_channels": 2, "kernel_size": 3}
    with pytest.raises(ValidationError):
        P(**{**base, **fields})


def test_params_accepts_zero_batch():
    assert R(input=[0, 2, 4, 4], out_channels=2, kernel_size=3).output_shape == (0, 2, 6, 6)


def test_params_normalises_pairs_and_padding():
    p = P(input=[1, 2, 4, 4], out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1, dilation=2)
    assert p.kernel_size == [3, 3] and p.stride == [2, 2] and p.dilation == [2, 2]
    assert p.output_padding == [1, 1]
    assert p.padding == [1, 1, 1, 1]


def test_defaults_params_resolve_without_optional_fields():
    # DESIGN §4: stride, padding, output_padding, dilation are optional (1, 0, 0, 1).
    # H=4, k=3: F = 6.
    p = Params(input=[1, 2, 4, 5], out_channels=3, kernel_size=3)
    r = resolve(p)
    assert r.output_shape == (1, 3, 6, 7)
    assert r.crops == (0, 0, 0, 0) and r.stride == (1, 1) and r.dilation == (1, 1)


@pytest.mark.parametrize("omit", ["stride", "padding", "output_padding", "dilation"])
def test_defaults_each_optional_field_may_be_omitted(omit):
    fields = {"input": [1, 2, 4, 5], "out_channels": 3, "kernel_size": 3, **EXPLICIT_DEFAULTS}
    del fields[omit]
    assert resolve(Params(**fields)).output_shape == (1, 3, 6, 7)


def test_defaults_same_without_stride():
    # padding: same with stride omitted: H_out = H.
    assert resolve(Params(input=[1, 1, 4, 4], out_channels=1, kernel_size=3, padding="same")).out_hw == (4, 4)


# --------------------------------------------------------------------------- layout, shapes


def test_nhwc_input_and_output_shape():
    # input N,H,W,C = 2,5,6,3; k=3, s=2: F = 11, 13.
    p = P(input=[2, 5, 6, 3], layout="NHWC", out_channels=4, kernel_size=3, stride=2, bias=True)
    r = resolve(p)
    assert r.in_channels == 3 and r.in_hw == (5, 6)
    assert r.output_shape == (2, 11, 13, 4)
    assert input_shapes(p) == {"x": (2, 3, 5, 6), "w": (3, 4, 3, 3), "b": (4,)}


def test_input_shapes_groups_and_no_bias():
    p = P(input=[1, 6, 4, 4], out_channels=9, kernel_size=[2, 3], groups=3)
    assert input_shapes(p) == {"x": (1, 6, 4, 4), "w": (6, 3, 2, 3)}
    r = resolve(p)
    assert r.accumulation_length == 2 * 2 * 3   # C_in/groups · kh · kw


def test_as_dict_round_trips_fields():
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=4, stride=1, padding="same")
    d = r.as_dict()
    assert d["crops"] == (1, 2, 1, 2) and d["out_hw"] == (5, 5) and d["layout"] == "NCHW"


# --------------------------------------------------------------------------- PyTorch cross-check


def test_output_size_agrees_with_pytorch():
    """Symmetric padding, output_padding, dilation, stride: same shape or both reject."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    accepted = rejected = 0
    for h, k, s, d, p, op in itertools.product(range(1, 5), range(1, 4), range(1, 4), range(1, 4),
                                               range(0, 4), range(0, 4)):
        try:
            y = F.conv_transpose2d(torch.zeros(1, 1, h, 2), torch.zeros(1, 1, k, 1), stride=(s, 1),
                                   padding=(p, 0), output_padding=(op, 0), dilation=(d, 1))
            theirs = tuple(y.shape)
        except RuntimeError:
            theirs = None
        try:
            ours = R(input=[1, 1, h, 2], out_channels=1, kernel_size=[k, 1], stride=[s, 1],
                     padding=[p, p, 0, 0], output_padding=[op, 0], dilation=[d, 1]).output_shape
        except InvalidCall:
            ours = None
        assert ours == theirs, dict(h=h, k=k, s=s, d=d, p=p, op=op)
        accepted += ours is not None
        rejected += ours is None
    assert accepted > 100 and rejected > 100


def test_groups_acceptance_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    for c_in, c_out, g in itertools.product(range(1, 7), range(1, 7), range(1, 4)):
        try:
            torch.nn.ConvTranspose2d(c_in, c_out, 2, groups=g)
            theirs = True
        except ValueError:
            theirs = False
        try:
            R(input=[1, c_in, 3, 3], out_channels=c_out, kernel_size=2, groups=g)
            ours = True
        except InvalidCall:
            ours = False
        assert ours == theirs, (c_in, c_out, g)


def test_explicit_output_shape_range_agrees_with_pytorch_output_size():
    """nn.ConvTranspose2d(output_size=...) accepts min..min+s-1 (dilation 1)."""
    torch = pytest.importorskip("torch")
    for h, k, s, p in itertools.product(range(1, 5), range(1, 4), range(1, 4), range(0, 2)):
        conv = torch.nn.ConvTranspose2d(1, 1, (k, 1), stride=(s, 1), padding=(p, 0), bias=False)
        x = torch.zeros(1, 1, h, 1)
        for out in range(1, (h - 1) * s + k + 4):
            try:
                theirs = tuple(conv(x, output_size=[out, 1]).shape)
            except (RuntimeError, ValueError):
                theirs = None
            try:
                ours = R(input=[1, 1, h, 1], out_channels=1, kernel_size=[k, 1], stride=[s, 1],
                         padding=[p, p, 0, 0], output_shape=[out, 1]).output_shape
            except InvalidCall:
                ours = None
            assert ours == theirs, dict(h=h, k=k, s=s, p=p, out=out)


# --------------------------------------------------------------------------- TensorFlow cross-check

_TF_SWEEP = textwrap.dedent("""
    import json, os, sys
    try:
        import tensorflow as tf
    except Exception as exc:  # a broken install is a skip, not a failure
        print(json.dumps({"skip": repr(exc)})); sys.exit(0)
    rows = []
    for pad in ("SAME", "VALID", "EXPLICIT"):
        for h in range(1, 5):
            for k in range(1, 5):
                for s in range(1, 4):
                    for lo, hi in (((0, 0),) if pad != "EXPLICIT" else ((0, 0), (1, 0), (1, 2))):
                        for out in range(1, h * s + k + 2):
                            padding = [[0, 0], [lo, hi], [0, 0], [0, 0]] if pad == "EXPLICIT" else pad
                            try:
                                y = tf.nn.conv2d_transpose(tf.ones([1, h, 1, 1]), tf.ones([k, 1, 1, 1]),
                                                           [1, out, 1, 1], strides=[1, s, 1, 1],
                                                           padding=padding)
                                ok = list(y.shape) == [1, out, 1, 1]
                            except (tf.errors.InvalidArgumentError, ValueError):
                                ok = False
                            rows.append([pad, h, k, s, lo, hi, out, ok])
    print(json.dumps({"rows": rows}))
""")


def test_output_shape_acceptance_agrees_with_tensorflow():
    """tf.nn.conv2d_transpose accepts output_shape for SAME/VALID/explicit exactly when we do."""
    rows = run_tensorflow(_TF_SWEEP)["rows"]
    assert len(rows) > 500
    counts = {True: 0, False: 0}
    for pad, h, k, s, lo, hi, out, tf_ok in rows:
        padding = pad.lower() if pad != "EXPLICIT" else [lo, hi, 0, 0]
        try:
            R(input=[1, 1, h, 1], out_channels=1, kernel_size=[k, 1], stride=[s, 1], padding=padding,
              output_shape=[out, 1])
            ours = True
        except InvalidCall:
            ours = False
        assert ours == tf_ok, dict(padding=pad, h=h, k=k, s=s, crops=(lo, hi), out=out, tf=tf_ok)
        counts[ours] += 1
    assert counts[True] > 100 and counts[False] > 100


# --------------------------------------------------------------------------- size_rule 'keras' (Note [Padding forms])
# Keras 3 (backend_utils._get_output_shape_given_tf_padding): valid -> F + op; same -> (H-1)*s + K%2 + op,
# crops by TensorFlow's SAME rule at that size.


@pytest.mark.parametrize("k, s, op, out, crops", [
    (3, 2, 0, 9, (1, 1)),     # (5-1)*2 + 1 + 0 = 9; F = 11, C = 2: 1 and 1 (plain 'same' gives 10)
    (3, 2, 1, 10, (0, 1)),    # 8 + 1 + 1 = 10 = H*s; C = 1: 0 top, 1 bottom
    (4, 2, 1, 9, (1, 2)),     # 8 + 0 + 1 = 9; F = 12, C = 3: 1 top, 2 bottom
    (1, 3, 2, 15, (0, 0)),    # 12 + 1 + 2 = 15 > F = 13: no crops, 2 rows past F
])
def test_keras_same_sizes(k, s, op, out, crops):
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=k, stride=s, padding="same", output_padding=op,
          size_rule="keras")
    assert r.out_hw == (out, out) and r.crops == crops * 2


@pytest.mark.parametrize("k, s, op, out", [(3, 2, 1, 12), (1, 2, 1, 10), (1, 3, 0, 13)])
def test_keras_valid_sizes(k, s, op, out):
    # F + op: (5-1)*2+3+1 = 12; k=1 < s=2, op = s - k: 8+1+1 = 10 = H*s (Keras' default None); op 0: F = 13.
    r = R(input=[1, 1, 5, 5], out_channels=1, kernel_size=k, stride=s, padding="valid", output_padding=op,
          size_rule="keras")
    assert r.out_hw == (out, out) and r.crops == (0, 0, 0, 0)


def test_keras_rule_rejects_output_padding_not_below_stride_even_where_dilation_allows_it():
    rejects("output_padding", "smaller than the stride 1", input=[1, 1, 5, 5], out_channels=1, kernel_size=3,
            dilation=2, padding="valid", output_padding=1, size_rule="keras")


def test_keras_same_even_kernel_without_output_padding_is_unreachable():
    # (5-1)*2 + 0 + 0 = 8: ceil(8/2) = 4 != 5 (Keras on TensorFlow fails in the kernel).
    rejects("output_padding", "cannot reach", input=[1, 1, 5, 5], out_channels=1, kernel_size=4, stride=2,
            padding="same", output_padding=0, size_rule="keras")


@pytest.mark.parametrize("fields", [{"padding": 1}, {"padding": "same", "output_shape": [10, 10]},
                                    {"padding": "same", "size_rule": "Keras"}])
def test_keras_rule_case_errors(fields):
    with pytest.raises(ValidationError):
        P(input=[1, 1, 5, 5], out_channels=1, kernel_size=3, stride=2, **{"size_rule": "keras", **fields})
