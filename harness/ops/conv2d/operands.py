"""The operands of conv2d: names, canonical shapes, fills.

Every backend receives the same canonical arrays (harness/data.py): the input
``x`` in NCHW whatever the case's layout, the weights ``w`` in
``(C_out, C_in/groups, kh, kw)`` (PyTorch's and MindSpore's own layout), and
the bias ``b`` when ``bias: true``. A case may name a fill per operand in
``data:``; the bias, without one, is random and never zero.
"""

from __future__ import annotations

from harness.ops.conv2d.semantics import input_shapes
from harness.ops.spec import Operand

OPERANDS = (
    Operand("x", "(N, C_in, H, W)", role="input"),
    Operand("w", "(C_out, C_in/groups, kh, kw)", role="weight"),
    Operand("b", "(C_out,)", role="bias", fill=None),
)

shapes = input_shapes
