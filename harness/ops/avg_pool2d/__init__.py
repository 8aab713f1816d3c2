"""2-D average pooling: everything conform knows about it, as one ``SPEC`` (Note [Operators]).

* ``semantics``: case fields, validity, resolved windows, derived values and
  memory estimate (the window rules are ``harness.ops.pooling``'s, Note
  [Pooling windows]);
* ``oracle``: the independent float64 reference (imports only NumPy);
* ``gradient``: the independent float64 vector–Jacobian products (``vjp``; imports only NumPy);
* ``tolerance``: the magnitude ``B``, the error bound and the work;
* ``coverage``: levels, pairwise input and random valid cases;
  ``errors``: error inputs. The operand (``x`` only), mapping rows and
  report labels are the pooling operators' shared ones
  (``harness.ops.pooling.parts``); what each framework can pose is in
  ``harness.ops.pooling.frameworks``.
"""

from __future__ import annotations

from harness.ops.avg_pool2d import semantics, tolerance
from harness.ops.avg_pool2d.coverage import COVERAGE, random_case
from harness.ops.avg_pool2d.errors import ERROR_INPUTS
from harness.ops.avg_pool2d.gradient import vjp
from harness.ops.avg_pool2d.oracle import reference
from harness.ops.pooling import parts
from harness.ops.spec import OpSpec, Operand

SPEC = OpSpec(
    name=semantics.NAME,
    Params=semantics.Params,
    resolve=semantics.resolve,
    operands=(Operand("x", "(N, C, H, W)", role="input"),),
    shapes=semantics.input_shapes,
    oracle=reference,
    magnitude=tolerance.magnitude,
    error_bound=tolerance.error_bound,
    footprint=semantics.footprint,
    DERIVED=semantics.DERIVED,
    derived=semantics.derived,
    flops=tolerance.flops,
    coverage=COVERAGE,
    fuzz=random_case,
    error_inputs=ERROR_INPUTS,
    mapping=parts.mapping_rows(semantics.NAME),
    report=parts.REPORT,
    doc="harness/ops/avg_pool2d/semantics.py",
    gradient=parts.gradient(vjp, roundings=2),
)
