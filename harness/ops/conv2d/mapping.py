"""The rows of ``conform mapping conv2d``: canonical parameters, in table order.

The order is the one of MindSpore's page "Function Differences with
tf.nn.conv2d" where it has the parameter. Each row says when a case exercises
the parameter (a non-default value), which is what the measured column counts;
the native spelling per surface is declared by each adapter (``PARAMETERS``
in ``harness/backends/*.py``).
"""

from __future__ import annotations

from harness.ops.spec import Canonical


def _pair_not(value, default) -> bool:
    return list(value) != [default, default]


MAPPING = (
    Canonical("x", "input `x`, (N, C_in, H, W) in `layout`", lambda p, d: True),
    Canonical("w", "weights `w`, (C_out, C_in/groups, kh, kw)", lambda p, d: True),
    Canonical("kernel_size", "`kernel_size` (kh, kw)", lambda p, d: True),
    Canonical("stride", "`stride` (sh, sw)", lambda p, d: _pair_not(p["stride"], 1)),
    Canonical("padding", "explicit `padding` [top, bottom, left, right]",
              lambda p, d: not isinstance(p["padding"], str)),
    Canonical("padding_mode", "`padding` 'same' / 'valid' (TensorFlow's rule)",
              lambda p, d: isinstance(p["padding"], str), breakdown=lambda p: p["padding"]),
    Canonical("layout", "`layout` NCHW / NHWC", lambda p, d: p.get("layout") == "NHWC"),
    Canonical("dilation", "`dilation` (dh, dw)", lambda p, d: _pair_not(p["dilation"], 1)),
    Canonical("name", "(an op name: no canonical meaning)", lambda p, d: False),
    Canonical("in_channels", "`C_in` (from the input)", lambda p, d: True),
    Canonical("out_channels", "`out_channels`", lambda p, d: True),
    Canonical("groups", "`groups`", lambda p, d: p.get("groups", 1) > 1),
    Canonical("bias", "`bias` (whether a bias is added)", lambda p, d: bool(p.get("bias"))),
    Canonical("b", "bias values `b`, (C_out,)", lambda p, d: bool(p.get("bias"))),
    Canonical("dtype", "`dtype` (other than float32)", lambda p, d: d != "float32"),
)
