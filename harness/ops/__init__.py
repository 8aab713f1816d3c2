"""Operators: one package per operator, each exposing one ``SPEC``; ``OPS`` is every registered one.

Note [Operators]
----------------
Everything that is about one operator lives in its package
(``harness/ops/<name>/``), and the core (case loading, runner, worker,
comparator, registry, coverage, pairwise, fuzz, mapping, reports, CLI) knows
operators only through the ``OpSpec`` (``harness/ops/spec.py``) that the
package's ``__init__`` exposes as ``SPEC``. The core never names an operator
or one of its parameters: it iterates over ``OPS``. In the manner of
PyTorch's OpInfo, one declaration gathers what generic code needs:

* ``Params`` (pydantic: the case's operator fields; ``model_dump()`` is the
  canonical form every backend receives) and ``resolve`` (the canonical
  semantics: a ``Resolved`` with ``output_shape`` and ``as_dict()``, or
  ``InvalidCall(field, reason)``): the loader validates cases with them and
  reports ``file:line: field: message``;
* ``operands`` (``Operand``: name, canonical shape, role, default fill) and
  ``shapes(params)``: the data layer fills them (a bias is never zero);
* ``oracle(params, arrays, dtype=float64)``: the independent reference. It
  imports nothing from the semantics or the adapters (tests/test_ops.py
  checks its imports): a reference that reuses the code under test cannot
  catch that code's bugs;
* ``magnitude(params, arrays)`` and ``error_bound(resolved)``: the tolerance
  model's ``B`` and ``ErrorBound(accumulation_length, roundings)``, derived in
  the operator's own Note; ``harness/compare.py`` stays generic;
* ``footprint``, ``flops``, ``DERIVED``/``derived``: the memory guard, the
  bench's GFLOP/s, and the values registry entries may test;
* ``coverage`` (levels per parameter, pairwise generator input), ``fuzz``
  (one random valid case), ``error_inputs``, ``mapping`` (rows of ``conform
  mapping``) and ``report`` (failure labels, capability dimensions).

Adapters are the other half (Keras 3 style): one module per framework
surface, one method per operator with the operator's name, which builds the
native call as data (``harness/backends/program.py``); a backend without the
method reports ``unsupported``.

Adding an operator:

1. create ``harness/ops/<name>/`` with the modules above (copy
   ``conv2d_transpose``'s layout) and ``SPEC = OpSpec(...)`` in its ``__init__``;
2. register it in ``OPS`` below;
3. add a method ``<name>(self, call) -> Program`` to each adapter that has
   the operator, with its ``PARAMETERS[<name>]`` declarations;
4. add ``cases/<name>/`` (by concern, plus ``python -m harness.pairwise <name>``)
   and the operator's tests (oracle hand cases, tightness).
"""

from __future__ import annotations

from harness.ops import avg_pool2d, conv2d, conv2d_transpose, max_pool2d
from harness.ops.spec import InvalidCall, OpSpec

OPS: dict[str, OpSpec] = {spec.name: spec for spec in (conv2d_transpose.SPEC, conv2d.SPEC, avg_pool2d.SPEC,
                                                       max_pool2d.SPEC)}

__all__ = ["OPS", "InvalidCall", "OpSpec", "get"]


def get(name: str) -> OpSpec:
    return OPS[name]
