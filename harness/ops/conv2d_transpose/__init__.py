"""2-D transposed convolution (DESIGN.md §2): everything conform knows about it, as one ``SPEC``.

* ``semantics``: case parameters, validation, padding forms resolved to
  crops and an output size (Note [Padding forms]);
* ``derived``: values for registry conditions, memory and work estimates;
* ``oracle``: the independent float64 reference (imports only NumPy);
* ``gradient``: the independent float64 vector–Jacobian products (``vjp``; imports only NumPy);
* ``tolerance``: the magnitude ``B`` and the error-bound parameters;
* ``operands``: ``x``, ``w``, ``b``; ``coverage``: levels and pairwise input;
  ``fuzz``: random valid cases; ``errors``: error inputs; ``mapping``: the
  ``conform mapping`` rows; ``report``: failure labels and capability
  dimensions; ``numba_kernel``: the in-house fast kernel (``numba`` backend).
"""

from __future__ import annotations

from harness.ops import bilinear
from harness.ops.conv2d_transpose import derived, gradient, semantics, tolerance
from harness.ops.conv2d_transpose.coverage import COVERAGE
from harness.ops.conv2d_transpose.errors import ERROR_INPUTS
from harness.ops.conv2d_transpose.fuzz import random_case
from harness.ops.conv2d_transpose.mapping import MAPPING
from harness.ops.conv2d_transpose.operands import OPERANDS, shapes
from harness.ops.conv2d_transpose.oracle import reference
from harness.ops.conv2d_transpose.report import REPORT
from harness.ops.spec import OpSpec

SPEC = OpSpec(
    name=semantics.NAME,
    Params=semantics.Params,
    resolve=semantics.resolve,
    operands=OPERANDS,
    shapes=shapes,
    oracle=reference,
    magnitude=tolerance.magnitude,
    error_bound=tolerance.error_bound,
    footprint=derived.footprint,
    DERIVED=derived.DERIVED,
    derived=derived.derived,
    flops=derived.flops,
    coverage=COVERAGE,
    fuzz=random_case,
    error_inputs=ERROR_INPUTS,
    mapping=MAPPING,
    report=REPORT,
    doc="harness/ops/conv2d_transpose/semantics.py",
    gradient=bilinear.gradient(gradient.vjp, tolerance.gradient_terms),
)
