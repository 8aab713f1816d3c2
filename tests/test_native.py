"""The inverse of every adapter's mapping (``Backend.from_native``/``to_native``, Note [Native vocabularies] in
``harness/native.py``), without running any framework: the adapters only build Programs.

* native -> canonical -> native: native calls drawn by hypothesis in each surface's own vocabulary (ints or
  pairs, defaults omitted or written out, TF's 1/2/4-int lists, any-case pad modes), read as canonical
  fields, posed by the adapter, read back from its Program: equal to the original, normalised;
* canonical -> native -> canonical: every valid case of the default suite a surface poses natively (its
  Program not ``emulated``) reads back as a call with the same resolved semantics;
* unknown, ill-typed and inexpressible native parameters raise ``NativeParamError`` naming the parameter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

from harness import ops
from harness.backends import backend_class
from harness.backends.base import Call, NativeParamError
from harness.cases import load_suite
from harness.native import operand_shapes
from harness.ops.pooling.frameworks import touches_padding
from harness.ops.spec import InvalidCall
from native_strategies import native as native_calls

ROOT = Path(__file__).resolve().parents[1]
SURFACES = ["tf.nn", "torch.functional", "torch.nn", "mindspore.nn", "mindspore.ops"]
OPERATORS = ["conv2d_transpose", "conv2d", "avg_pool2d", "max_pool2d"]


def resolved(op: str, fields: dict, input_shape) -> dict:
    """The resolved semantics of canonical fields (``{"invalid": field}`` for a call the semantics rejects)."""
    spec = ops.get(op)
    try:
        return spec.resolve(spec.Params(**fields, input=list(input_shape))).as_dict()
    except InvalidCall as exc:
        return {"invalid": exc.field}


def same_semantics(op: str, a: dict, b: dict) -> bool:
    """Equal resolved semantics; an average whose windows never cover padding counts it or not alike."""
    if op == "avg_pool2d" and not touches_padding(a) and not touches_padding(b):
        ignore = {"count_include_pad", "count_rule"}
        a, b = ({k: v for k, v in r.items() if k not in ignore} for r in (a, b))
    return a == b


def build(surface: str, op: str, fields: dict, input_shape):
    """The surface's Program for canonical fields, built the way the parent builds one (no framework)."""
    spec = ops.get(op)
    params = spec.Params(**fields, input=list(input_shape))
    try:
        r = spec.resolve(params).as_dict()
    except InvalidCall:
        r = None
    arrays = {name: np.zeros(shape) for name, shape in spec.shapes(params).items()}
    call = Call(op=op, case_id="native", params=params.model_dump(), resolved=r, dtype="float32", arrays=arrays)
    cls = backend_class(surface)
    assert cls.plans_calls
    return getattr(cls(), op)(call), operand_shapes(call)


# ---------------------------------------------------------------- native -> canonical -> native

@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("surface", SURFACES)
def test_native_calls_round_trip_through_the_canonical_case(surface, op):
    cls = backend_class(surface)
    inverse = cls.native_inverse(op)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(native_calls(surface, op))
    def check(drawn):
        native, input_shape = drawn
        fields = cls.from_native(op, native, input_shape)
        assume("invalid" not in resolved(op, fields, input_shape))   # e.g. a window of padding only
        program, shapes = build(surface, op, fields, input_shape)
        back = cls.to_native(op, program, shapes)
        if program.emulated:   # the adapter spells this call otherwise (TF: pads equal to SAME's as 'SAME')
            assert same_semantics(op, resolved(op, cls.from_native(op, back, input_shape), input_shape),
                                  resolved(op, fields, input_shape)), (native, back, program.notes)
        else:
            assert back == inverse.normalise(native), (native, fields)

    check()


# ---------------------------------------------------------------- canonical -> native -> canonical

@pytest.fixture(scope="module")
def suite():
    return [c for c in load_suite([str(ROOT / "cases")]) if c.resolved is not None]


@pytest.mark.parametrize("surface", SURFACES)
def test_suite_cases_read_back_with_the_same_semantics(surface, suite):
    cls, checked = backend_class(surface), {}
    for case in suite:
        fields = {k: v for k, v in case.canonical_params().items() if k != "input"}
        try:
            program, shapes = build(surface, case.op, fields, case.params.input)
        except Exception as exc:   # Unsupported: the surface cannot pose it at all
            assert type(exc).__name__ == "Unsupported", (case.id, exc)
            continue
        if program.emulated:       # part of the call is not the framework's own: no native form to read back
            continue
        native = cls.to_native(case.op, program, shapes)
        back = cls.from_native(case.op, native, case.params.input)
        assert same_semantics(case.op, resolved(case.op, back, case.params.input), case.resolved.as_dict()), \
            (case.id, native, back)
        checked[case.op] = checked.get(case.op, 0) + 1
    assert set(checked) == set(OPERATORS), checked
