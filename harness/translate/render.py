"""How ``conform translate`` says a translation: both calls in their own vocabularies, what each means, the
target program's code where the call alone is not the translation, and the verification's outcome.

A call is printed in the vocabulary ``conform translate`` reads (and claim files use): keywords, tensors by
their shape, a pair written once when the API takes a single int for both axes, parameters of the built
object's call (torch's ``forward(x, output_size=...)``, declared ``call="forward"`` in ``PARAMETERS``) in
a second call. So a printed call can be translated back.
"""

from __future__ import annotations

from harness.backends import backend_class
from harness.backends import program as programs
from harness.backends.base import NativeParamError
from harness.claims import words
from harness.native import operand_shapes
from harness.claims.load import Side, side_call
from harness.text import printable, python_literal
from harness.translate.core import Translation, layout_of
from harness.translate.verify import Verification

INDENT = " " * 4


def call_text(surface: str, op: str, native: dict) -> str:
    """``api(k=v, ...)`` (and ``(x, k=v)`` for the built object's parameters) in the surface's vocabulary."""
    cls = backend_class(surface)
    inverse = cls.native_inverse(op).pick(native)
    forward = {p.name for p in cls.PARAMETERS.get(op, {}).values() if p.call == "forward" and p.name}
    ctor = [f"{k}={_value(inverse, k, v)}" for k, v in native.items() if k not in forward]
    later = [f"{k}={_value(inverse, k, v)}" for k, v in native.items() if k in forward]
    text = f"{inverse.api}({', '.join(ctor)})"
    return text + (f"(x, {', '.join(later)})" if later else "")


def _value(inverse, name: str, value) -> str:
    """A pair equal on both axes as one int where the API takes that (``kernel_size=3``)."""
    if isinstance(value, list) and len(value) == 2 and value[0] == value[1] and name in inverse.schema:
        try:
            if inverse.schema[name].parse(name, value[0]) == value:
                value = value[0]
        except NativeParamError:
            pass
    return python_literal(value)


def shape_text(shape) -> str:
    return "×".join(str(v) for v in shape)


def source_lines(tr: Translation) -> list[str]:
    resolved = tr.source_case.resolved.as_dict()
    return [f"{tr.source}: {call_text(tr.source, tr.op, tr.source_native)}",
            f"{INDENT}on input {shape_text(tr.source_input)} ({layout_of(tr.source_case)}): "
            f"{words.meaning(resolved)}"]


def target_lines(tr: Translation, code: bool = False) -> list[str]:
    out = [f"{tr.target}: {call_text(tr.target, tr.op, tr.minimal)}",
           f"{INDENT}on input {shape_text(tr.target_input)} ({tr.layout})"
           + ("" if tr.layout == layout_of(tr.source_case) else f", the source's input transposed from "
              f"{layout_of(tr.source_case)}")]
    if tr.exact:
        out += [f"{INDENT}note: {note}" for note in tr.notes]
    else:
        out.append(f"{INDENT}emulated: the call alone is not the translation; {tr.target} has no native form of:")
        out += [f"{INDENT * 2}{note}" for note in tr.notes]
    if code or not tr.exact:
        out += code_lines(tr)
    return out


def code_lines(tr: Translation) -> list[str]:
    """The target program conform runs (the reproducers' code), on conform's canonical operands."""
    call = side_call(Side(tr.target, {}, tr.case, 0))
    operands = ", ".join(f"{name} {tuple(shape)}" for name, shape in operand_shapes(call).items())
    try:
        prelude = programs.prelude(tr.program)
    except programs.CannotReproduce as exc:
        prelude = [f"# {exc}"]
    if tr.program.environment:
        prelude = ["import os"] + prelude        # the prelude's os.environ defaults
    body = prelude + programs.lines(tr.program)
    return ([f"{INDENT}the code ({operands}: NumPy arrays in conform's canonical layouts, x NCHW; "
             f"`{tr.program.output}` is the answer in {tr.layout}):"]
            + [INDENT * 2 + line for line in body])


def verification_lines(tr: Translation, result: Verification) -> list[str]:
    out = []
    if result.verified:
        shapes = ", ".join(shape_text(s) for s in result.checked)
        agree = ("identical outputs" if result.max_abs_diff == 0 else
                 f"largest difference {result.max_abs_diff:.3g}, {result.ratio:.2g} of what two correct "
                 "implementations may differ by")
        out.append(f"verified on {len(result.checked)} shape{'s' * (len(result.checked) != 1)} (NCHW {shapes}): "
                   f"both calls run natively, {agree} ({result.duration_s:.1f} s)")
        if len(result.checked) < result.asked:
            out.append(f"{INDENT}{result.asked - len(result.checked)} fewer than asked: the source call is valid on "
                       "no other input size tried" + (f" (at {shape_text(result.left_out[0][0])}: "
                                                     f"{result.left_out[0][1]})" if result.left_out else ""))
        return out
    broken = result.broken or {"input": None, "reason": "no input size where the source call is valid"}
    if broken.get("verdict") in ("skipped",):
        return [f"not verified: {broken['reason']}"]
    where = f" at input {shape_text(broken['input'])} (NCHW)" if broken.get("input") else ""
    out.append(f"breaks{where}: {broken['reason']}")
    if broken.get("explanation"):
        out.append(f"{INDENT}{broken['explanation']}")
    if result.checked:
        out.append(f"{INDENT}(held on {', '.join(shape_text(s) for s in result.checked)})")
    return out


def say(lines: list[str]) -> str:
    """Lines for a terminal (call values come from the user: never raw control characters)."""
    return "\n".join(printable(line) for line in lines) + "\n"
