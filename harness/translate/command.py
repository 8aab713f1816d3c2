"""``conform translate --from A --to B [CALL | --params P]``: read, translate, verify, print; the exit code.

Exit codes (DESIGN.md §6): 0 translated (and verified, unless ``--no-verify``); 1 the target cannot express
the call, or the translation does not hold on some input size, or could not be run; 2 bad input: the call
or the parameters unreadable, a native parameter the source surface does not have (``NativeParamError``,
named), an unknown surface or operator.
"""

from __future__ import annotations

from pathlib import Path

from harness.backends.base import NativeParamError
from harness.translate import parse, render
from harness.translate.core import CannotExpress, surface, translate
from harness.translate.parse import TranslateInputError
from harness.translate.verify import verify

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
REGISTRY = Path("cases") / "known_divergences.yaml"


def run(args) -> int:
    try:
        tr = _translation(args)
    except CannotExpress as exc:
        print(render.say(render.source_lines(exc) + [f"{args.target}: cannot express this call: {exc}"]), end="")
        return EXIT_FAIL
    lines = render.source_lines(tr) + render.target_lines(tr, code=args.code)
    if args.no_verify:
        print(render.say(lines + ["not verified (--no-verify)"]), end="")
        return EXIT_OK
    print(render.say(lines), end="", flush=True)
    result = verify(tr, args.verify_shapes, args.timeout, _registry(), args.max_memory)
    print(render.say(render.verification_lines(tr, result)), end="")
    return EXIT_OK if result.verified else EXIT_FAIL


def _translation(args):
    """Read the input and translate it; every input problem as ``TranslateInputError`` (exit 2)."""
    try:
        source = surface(args.source)
        surface(args.target)
        if (args.call is None) == (args.params is None):
            raise TranslateInputError("give the call (e.g. 'Conv2DTranspose(filters=16, kernel_size=3)') or "
                                      "--params, one of them")
        if args.call is not None:
            callee, positional, keywords = parse.parse_call(args.call)
        else:
            callee, positional, keywords = None, [], parse.parse_params(args.params)
        op = parse.operator_for(args.source, source, callee, args.op)
        native = parse.bind(positional, keywords, source.native_inverse(op))
        shape = parse.parse_shape(args.input) if args.input else None
        return translate(args.source, args.target, op, native, shape)
    except NativeParamError as exc:
        where = f"{args.source}: {exc.param}: " if exc.param else f"{args.source}: "
        raise TranslateInputError(where + exc.message) from None


def _registry():
    from harness import divergences
    return divergences.load(REGISTRY) if REGISTRY.is_file() else divergences.Registry()
