"""Reading what ``conform translate`` is given: a call string, or the parameters as a YAML/JSON mapping, and
which operator of the source surface it names.

The call string is parsed with ``ast`` and never evaluated: every argument must be a literal (numbers,
strings, lists, tuples, dicts, True/False/None), tensors given by their shape as in a claim file
(``filters=[3, 3, 16, 8]``). A leading bare name (``x``, ``input``) is the input tensor and is skipped;
other positional literals fill the API's required parameters in order (``ConvTranspose2d(8, 16, 3)``),
anything further must be named (the adapters' schemas know which parameters are required, not every
API's positional order). ``Module(...)(x, output_size=[32, 32])``: the second call's keywords are the
built object's (torch's ``forward``), read as the same vocabulary. The callee's last name picks the
operator: the API each surface's inverse mapping declares (``Inverse.api``: ``Conv2DTranspose``,
``ConvTranspose2d``, ``conv_transpose2d``, ``Conv2dTranspose``, ``ConvTranspose``, ...), or the
canonical operator name.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

from harness.backends.base import NativeParamError
from harness.native import REQUIRED
from harness.userfile import read_text
from harness.yamlsrc import ProblemsError, load_yaml

#: Longest call string or parameter text read (a layer call is a line or two).
MAX_TEXT = 20_000
#: Other names the frameworks themselves export for the same layer (``keras.layers`` aliases).
ALIASES = {"tf.keras": {"Convolution2DTranspose": "conv2d_transpose", "Convolution2D": "conv2d",
                        "AvgPool2D": "avg_pool2d", "MaxPool2D": "max_pool2d"}}


class TranslateInputError(ValueError):
    """Input ``conform translate`` cannot read (exit 2): the message says what and where."""


def callee_names(surface: str, cls) -> dict[str, str]:
    """Callee name -> operator for a surface: its APIs' last names, the framework's aliases, the op names."""
    names: dict[str, str] = {}
    for op, inverse in cls.NATIVE.items():
        for api in (inverse, inverse.alternative):
            if api is not None:
                names.setdefault(api.api.rsplit(".", 1)[-1], op)
    for alias, op in ALIASES.get(surface, {}).items():
        if op in cls.NATIVE:
            names.setdefault(alias, op)
    for op in cls.NATIVE:
        names.setdefault(op, op)
    return names


def operator_for(surface: str, cls, callee: Optional[str], op: Optional[str]) -> str:
    """The operator a callee names on ``surface`` (``op``: the ``--op`` the user gave, which must agree)."""
    if callee is None:
        if op is None:
            raise TranslateInputError("--params needs --op (which operator the parameters are for): one of "
                                      + ", ".join(cls.NATIVE))
        if op not in cls.NATIVE:
            raise TranslateInputError(f"--op {op}: {surface} has no native form of it (it has: "
                                      f"{', '.join(cls.NATIVE)})")
        return op
    names = callee_names(surface, cls)
    if callee not in names:
        known = ", ".join(f"{cls.NATIVE[o].api.rsplit('.', 1)[-1]} ({o})" for o in cls.NATIVE)
        raise TranslateInputError(f"{surface} has no operator {callee!r}; known: {known}")
    if op is not None and names[callee] != op:
        raise TranslateInputError(f"{callee} is {surface}'s {names[callee]}, not --op {op}")
    return names[callee]


def _dotted(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _literal(node: ast.AST, what: str):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise TranslateInputError(
            f"{what}: {ast.unparse(node)[:60]!r} is not a literal (conform reads only numbers, strings, lists, "
            "tuples, True/False/None; give a tensor by its shape, e.g. filters=[3, 3, 16, 8])") from None


def parse_call(text: str) -> tuple[str, list, dict]:
    """``(callee's last name, positional literals, keyword literals)`` of a call string."""
    if len(text) > MAX_TEXT:
        raise TranslateInputError(f"the call is {len(text)} characters long; at most {MAX_TEXT} are read")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise TranslateInputError(f"cannot parse the call: {exc.msg} (column {exc.offset}): {text.strip()[:80]!r}"
                                  ) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise TranslateInputError(f"cannot parse the call: {exc}") from None
    node = tree.body
    if not isinstance(node, ast.Call):
        raise TranslateInputError(f"expected a call such as Conv2DTranspose(filters=16, ...), got "
                                  f"{text.strip()[:60]!r}")
    calls = [node]
    while isinstance(calls[-1].func, ast.Call):      # Module(...)(x, output_size=...)
        calls.append(calls[-1].func)
    if len(calls) > 2:
        raise TranslateInputError("at most two calls: the constructor and the built object's call")
    name = _dotted(calls[-1].func)
    if name is None:
        raise TranslateInputError(f"the callee {ast.unparse(calls[-1].func)[:60]!r} is not a (dotted) name")
    positional: list = []
    keywords: dict = {}
    for depth, call in enumerate(reversed(calls)):
        args = list(call.args)
        if args and isinstance(args[0], (ast.Name, ast.Attribute)):
            args = args[1:]                            # the input tensor
        if depth == 0:
            positional = [_literal(a, f"positional argument {i + 1}") for i, a in enumerate(args)]
        elif args:
            raise TranslateInputError("the built object's call takes the input and keywords only")
        for keyword in call.keywords:
            if keyword.arg is None:
                raise TranslateInputError("**kwargs cannot be read: name every parameter")
            if keyword.arg in keywords:
                raise TranslateInputError(f"{keyword.arg} is given twice")
            keywords[keyword.arg] = _literal(keyword.value, keyword.arg)
    return name.rsplit(".", 1)[-1], positional, keywords


def bind(positional: list, keywords: dict, inverse) -> dict:
    """Positional literals onto the API's leading required parameters; the native call as a mapping."""
    inverse = inverse.pick(keywords)
    required = []
    for name, arg in inverse.schema.items():
        if arg.default is not REQUIRED:
            break
        required.append(name)
    if len(positional) > len(required):
        extra = len(positional) - len(required)
        raise NativeParamError("", f"{inverse.api}: {extra} positional argument(s) past its required parameters "
                                   f"({', '.join(required) or 'none'}): give the others by name")
    native = dict(zip(required, positional))
    for name, value in keywords.items():
        if name in native:
            raise NativeParamError(name, f"{inverse.api}: {name!r} is given both by position and by name")
        native[name] = value
    return native


def parse_params(text: str) -> dict:
    """``--params``: a YAML/JSON mapping, inline or the path of a file holding one."""
    file = "--params"
    if "\n" not in text and len(text) < 4096 and Path(text).is_file():
        file = text
        try:
            text = read_text(Path(text), file)
        except ProblemsError as exc:
            raise TranslateInputError(str(exc)) from None
    if len(text) > MAX_TEXT:
        raise TranslateInputError(f"{file}: {len(text)} characters; at most {MAX_TEXT} are read")
    try:
        value = load_yaml(text, file).value
    except ProblemsError as exc:
        raise TranslateInputError(str(exc)) from None
    if not isinstance(value, dict):
        if file == "--params" and _looks_like_path(text):
            what = "is not a regular file" if Path(text).exists() else "does not exist"
            raise TranslateInputError(f"--params {text!r}: the file {what} (and the text is no mapping of native "
                                      "parameters either)")
        raise TranslateInputError(f"{file}: expected a mapping of native parameters (e.g. 'filters: 16'), got "
                                  f"{type(value).__name__}")
    return value


def _looks_like_path(text: str) -> bool:
    text = text.strip()
    return "\n" not in text and ("/" in text or text.lower().endswith((".yaml", ".yml", ".json")))


def parse_shape(text: str) -> list[int]:
    """``--input N,C,H,W`` (in the source's own layout)."""
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",")]
    except ValueError:
        shape = []
    if len(shape) != 4 or min(shape) < 1:
        raise TranslateInputError(f"--input {text[:40]!r}: expected 4 positive ints, e.g. 1,3,16,16 (in the source "
                                  "call's own layout: NHWC for tf.keras/tf.nn by default)")
    return shape
