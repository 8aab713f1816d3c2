"""2-D convolution, forward (Note [conv2d semantics]): everything conform knows about it, as one ``SPEC``.

* ``semantics``: case parameters, validation, padding forms resolved to
  per-side zero padding and an output size;
* ``derived``: values for registry conditions, memory and work estimates;
* ``oracle``: the independent float64 reference (imports only NumPy);
* ``gradient``: the independent float64 vector–Jacobian products (``vjp``; imports only NumPy);
* ``tolerance``: the magnitude ``B`` and the error-bound parameters
  (Note [conv2d error bound]);
* ``operands``: ``x``, ``w``, ``b``; ``coverage``: levels and pairwise input;
  ``fuzz``: random valid cases; ``errors``: error inputs; ``mapping``: the
  ``conform mapping`` rows; ``report``: failure labels and capability
  dimensions; ``numba_kernel`` (with ``numba_depthwise``): the in-house fast
  kernel (``numba`` backend).
"""

from __future__ import annotations

from harness.ops import bilinear
from harness.ops.conv2d import derived, gradient, semantics, tolerance
from harness.ops.conv2d.coverage import COVERAGE
from harness.ops.conv2d.errors import ERROR_INPUTS
from harness.ops.conv2d.fuzz import random_case
from harness.ops.conv2d.mapping import MAPPING
from harness.ops.conv2d.operands import OPERANDS, shapes
from harness.ops.conv2d.oracle import reference
from harness.ops.conv2d.report import REPORT
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
    doc="harness/ops/conv2d/semantics.py",
    gradient=bilinear.gradient(gradient.vjp, tolerance.gradient_terms),
)
