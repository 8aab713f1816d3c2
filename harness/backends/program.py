"""The native call as data: what an adapter asks a framework to do, run by the worker, shown and reproduced.

Note [Native programs]
----------------------
An adapter's operator method (``TfNnBackend.conv2d_transpose(call)``) does
not call the framework itself: it builds a ``Program``, plain data saying
which modules it needs, how the canonical operands become framework tensors
(``prepare``), the framework's own call (``call``: what ``native_call``
shows, what is timed, what the framework may reject), and how the answer
becomes a NumPy array in the case layout (``finish``), with the emulation
notes. ``Backend.run`` executes it (``harness/backends/base.py``); the
recorded ``native_call`` text and the reproducer's ``repro.py``
(``harness/report/repro_scripts.py``) are both rendered from the same
``Program``, so a reproducer cannot drift from what the adapter called: there
is no second copy of any adapter's argument mapping.

Because building a program touches no framework, the parent can build it
too: a call that crashed its worker or timed out still gets a reproducer.

A step is ``target = expression``, where an expression is a literal (ints,
strings, tuples, lists, dicts, ``slice`` inside an ``Index``), a ``Ref`` to
an earlier value (a canonical operand by its name, or a step's target), an
``Attr`` (a module attribute such as ``tf.float16``), a ``Call`` of a dotted
function path, of a ``Method`` of a value, or of a ``Ref``, or an ``Index``.
A ``Fallback`` says: if the call phase raises an error containing ``when``,
run this other program instead (TensorFlow's NCHW kernel that "only supports
NHWC"); the reproducer does the same with ``try``/``except``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from harness.text import python_literal


@dataclass(frozen=True)
class Ref:
    """A value named earlier: a canonical operand (``x``) or a step's target."""

    name: str


@dataclass(frozen=True)
class Attr:
    """A module attribute used as a value, by dotted path (``tf.float16``, ``mindspore.float32``)."""

    path: str


@dataclass(frozen=True)
class Method:
    """The method ``name`` of a value (``Method(Ref("y"), "numpy")``)."""

    value: Any
    name: str


@dataclass(frozen=True)
class Call:
    """A call: ``fn`` is a dotted path (``"tf.nn.conv2d_transpose"``), a ``Method`` or a ``Ref``."""

    fn: Union[str, Method, Ref]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Index:
    """``value[key]``; ``key`` a tuple of ints and ``slice`` objects."""

    value: Any
    key: tuple


@dataclass(frozen=True)
class Step:
    """``target = expr`` (no target: an expression run for its effect). ``phase``: ``prepare`` (adapter
    code before the call), ``call`` (the framework's own: its errors are its answer) or ``finish``
    (adapter code after it); ``timed`` steps make up ``duration_ms``."""

    target: Optional[str]
    expr: Any
    phase: str = "call"
    timed: bool = False
    comment: str = ""
    #: A step of the backward pass (Note [Gradients] in ``autodiff.py``): run only when the forward output has
    #: the cotangent's shape; an error it raises is the framework failing the gradient.
    backward: bool = False


@dataclass(frozen=True)
class Import:
    """A module the program uses: ``import module as alias``; ``embed``: an in-house module whose source
    the reproducer embeds (it imports nothing from conform), called there by bare name; ``names``
    embeds only those functions' sources."""

    module: str
    alias: Optional[str] = None
    embed: bool = False
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Function:
    """A function defined by steps (only as a ``Step``'s whole expression: ``def target(*params): ...``):
    what functional autodiff differentiates (``jax.vjp(fn, x, w)``, ``mindspore.vjp``). Its steps see the
    program's earlier targets, with ``params`` rebound to the arguments; it returns ``result``."""

    params: tuple[str, ...]
    steps: tuple["Step", ...]
    result: str


@dataclass(frozen=True)
class Leaf:
    """A framework value the backward pass differentiates with respect to (Note [Gradients] in
    ``harness/backends/autodiff.py``): ``value`` holds canonical operand ``operand`` as
    ``canonical.transpose(perm)`` (``perm`` None: the canonical layout). ``value`` is a ``Ref`` to a step's
    target, or an attribute such as a module's ``Method(Ref("module"), "weight")`` Parameter."""

    operand: str
    value: Any
    perm: Optional[tuple[int, ...]] = None


@dataclass(frozen=True)
class Fallback:
    when: Union[str, tuple[str, ...]]     # a substring (or one of several) of the call phase's error message
    program: "Program"
    note: str                 # prepended to the notes; ``{error}``: the first line of the error

    @property
    def substrings(self) -> tuple[str, ...]:
        return (self.when,) if isinstance(self.when, str) else tuple(self.when)

    def matches(self, message: str) -> bool:
        return any(text in message for text in self.substrings)


@dataclass(frozen=True)
class Program:
    framework: str
    imports: tuple[Import, ...]
    operands: tuple[str, ...]             # canonical operands read (their names in Call.arrays / inputs.npz)
    steps: tuple[Step, ...]
    output: str                           # the target holding the NumPy answer, in the case layout
    emulated: bool = False
    notes: tuple[str, ...] = ()
    accumulation: Optional[str] = None    # Native.accumulation, when known without running
    fallback: Optional[Fallback] = None
    environment: tuple[tuple[str, str], ...] = ()   # os.environ defaults set before the imports
    setup: tuple[str, ...] = ()           # reproducer lines after the imports (e.g. a framework's context)
    #: The differentiable operands (Note [Gradients] in ``harness/backends/autodiff.py``); none: the
    #: backend has no gradient of this call.
    leaves: tuple[Leaf, ...] = ()
    #: The framework value of the output once every step ran (a target): ``case layout = value.transpose(perm)``.
    result: Optional[Leaf] = None
    #: Backward programs only: canonical operand -> the target holding its gradient (NumPy, canonical layout).
    gradients: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------- rendering

def _embedded(program: Program) -> set[str]:
    return {imp.module for imp in program.imports if imp.embed or imp.names}


def _path(path: str, embedded: set[str]) -> str:
    """A dotted path as the reproducer writes it: bare for an embedded module's function."""
    module, _, name = path.rpartition(".")
    return name if module in embedded else path


def render(expr, embedded: frozenset = frozenset(), inline: Optional[dict] = None) -> str:
    """Python source of an expression; ``inline`` maps targets to the source that replaces them."""
    inline = inline or {}
    if isinstance(expr, Ref):
        return inline.get(expr.name, expr.name)
    if isinstance(expr, Attr):
        return _path(expr.path, embedded)
    if isinstance(expr, Method):
        return f"{render(expr.value, embedded, inline)}.{expr.name}"
    if isinstance(expr, Call):
        fn = _path(expr.fn, embedded) if isinstance(expr.fn, str) else render(expr.fn, embedded, inline)
        parts = [render(a, embedded, inline) for a in expr.args]
        parts += [f"{k}={render(v, embedded, inline)}" for k, v in expr.kwargs.items()]
        return f"{fn}({', '.join(parts)})"
    if isinstance(expr, Index):
        return f"{render(expr.value, embedded, inline)}[{', '.join(_key(k) for k in expr.key)}]"
    if isinstance(expr, tuple):
        inner = ", ".join(render(v, embedded, inline) for v in expr)
        return f"({inner},)" if len(expr) == 1 else f"({inner})"
    if isinstance(expr, list):
        return "[" + ", ".join(render(v, embedded, inline) for v in expr) + "]"
    if isinstance(expr, dict):
        return "{" + ", ".join(f"{k!r}: {render(v, embedded, inline)}" for k, v in expr.items()) + "}"
    return python_literal(expr)


def _key(k) -> str:
    if isinstance(k, slice):
        return (f"{'' if k.start is None else k.start}:{'' if k.stop is None else k.stop}"
                + ("" if k.step is None else f":{k.step}"))
    return "..." if k is Ellipsis else repr(k)


def native_call(program: Program) -> str:
    """The framework's call as one expression (``native_call`` in report.json): the call phase's last
    assignment, earlier call-phase targets inlined (``tf.nn.bias_add(tf.nn.conv2d_transpose(...), ...)``,
    ``mindspore.nn.Conv2dTranspose(...)(x)``)."""
    inline: dict[str, str] = {}
    text = ""
    functions: set[str] = set()
    for step in _flattened(program.steps, functions):
        if step.phase == "call" and step.target and not step.backward and not _mentions(step.expr, functions):
            text = render(step.expr, frozenset(), inline)
            inline[step.target] = text
    return text


def _flattened(steps, functions: set[str]):
    """Steps with each ``Function``'s body in its place (its name added to ``functions``)."""
    for step in steps:
        if isinstance(step.expr, Function):
            functions.add(step.target)
            yield from _flattened(step.expr.steps, functions)
        else:
            yield step


def _mentions(expr, names: set[str]) -> bool:
    """Whether ``expr`` refers to one of ``names`` (a call of a differentiated function is not the native call)."""
    if isinstance(expr, Ref):
        return expr.name in names
    if isinstance(expr, (Method, Index)):
        return _mentions(expr.value, names)
    if isinstance(expr, Call):
        return (not isinstance(expr.fn, str) and _mentions(expr.fn, names)) or any(
            _mentions(a, names) for a in (*expr.args, *expr.kwargs.values()))
    if isinstance(expr, (tuple, list)):
        return any(_mentions(v, names) for v in expr)
    if isinstance(expr, dict):
        return any(_mentions(v, names) for v in expr.values())
    return False


def lines(program: Program) -> list[str]:
    """The program's steps as Python statements (the body of a reproducer's ``attempt``)."""
    return _statements(program.steps, frozenset(_embedded(program)))


def _statements(steps, embedded: frozenset) -> list[str]:
    out = []
    for step in steps:
        comment = f"   # {step.comment}" if step.comment else ""
        if isinstance(step.expr, Function):
            out.append(f"def {step.target}({', '.join(step.expr.params)}):{comment}")
            out += ["    " + line for line in _statements(step.expr.steps, embedded)]
            out.append(f"    return {step.expr.result}")
            continue
        code = render(step.expr, embedded)
        statement = f"{step.target} = {code}" if step.target else code
        out.append(statement + comment)
    return out


def prelude(program: Program) -> list[str]:
    """Imports and embedded sources of a reproducer (``CannotReproduce`` for a non-embeddable conform module)."""
    out: list[str] = [f"os.environ.setdefault({name!r}, {value!r})" for name, value in program.environment]
    seen: set = set()    # kernel modules embedded whole so far: once per script, however many modules import them
    for imp in program.imports:
        if imp.embed or imp.names:
            module = importlib.import_module(imp.module)
            sources = ([inspect.getsource(module)] if imp.embed
                       else [inspect.getsource(getattr(module, name)) for name in imp.names])
            if imp.embed and imp.module in seen:
                continue
            if imp.embed and _embedded_whole(imp.module):
                seen.add(imp.module)
            out.append(f"# ---- begin: source of conform's {imp.module} (embedded: this script imports no conform)")
            for source in sources:
                out += _without_conform_imports(source.replace("from __future__ import annotations\n", ""), seen)
            out.append("# ---- end of embedded source")
        elif imp.module.split(".")[0] == "harness":
            raise CannotReproduce(f"the call uses conform's own {imp.module}, which cannot be embedded")
        else:
            out.append(f"import {imp.module}" + (f" as {imp.alias}" if imp.alias else ""))
    return out + list(program.setup)


def _embedded_whole(module: str) -> bool:
    """Kernel modules are embedded whole, not function by function: their functions call the module's other
    definitions (numba intrinsics, tile constants), and they import nothing from conform but each other."""
    return module.startswith("harness.kernels.") or module.rsplit(".", 1)[-1].startswith("numba_")


def _without_conform_imports(source: str, seen: Optional[set] = None) -> list[str]:
    """An embedded module's lines, each ``from harness.m import f, g`` replaced by the sources of f and g
    (or by the whole of ``harness.m`` for a kernel module, once)."""
    seen = set() if seen is None else seen
    out = []
    for line in source.splitlines():
        if re.fullmatch(r"from harness(?:\.\w+)+ import [\w, ]+\s*# noqa: F401\b.*", line):
            continue   # imported for its effect on conform (the kernels' cache keys), no name used: nothing to embed
        found = re.fullmatch(r"from (harness(?:\.\w+)+) import ([\w, ]+)", line.strip())
        if not found or line.startswith(" "):
            out.append(line)
            continue
        module = importlib.import_module(found.group(1))
        if _embedded_whole(module.__name__):
            if module.__name__ not in seen:
                seen.add(module.__name__)
                whole = inspect.getsource(module).replace("from __future__ import annotations\n", "")
                out += [f"# ---- embedded: {module.__name__}"] + _without_conform_imports(whole, seen)
            continue
        for name in (n.strip() for n in found.group(2).split(",")):
            out += inspect.getsource(getattr(module, name)).splitlines() + [""]
    return out + [""]


class CannotReproduce(Exception):
    pass


# ---------------------------------------------------------------- execution (in the worker)

def namespace(program: Program) -> dict[str, Any]:
    """The modules a program's paths start from, imported."""
    ns: dict[str, Any] = {}
    for imp in program.imports:
        module = importlib.import_module(imp.module)
        if imp.alias:
            ns[imp.alias] = module
        else:
            top = imp.module.split(".")[0]
            ns[top] = importlib.import_module(top)
    return ns


def resolve_path(path: str, ns: dict[str, Any]):
    head, *rest = path.split(".")
    value = ns[head]
    for part in rest:
        value = getattr(value, part)
    return value


def evaluate(expr, env: dict[str, Any], ns: dict[str, Any]):
    """The value of an expression, with ``env`` holding operands and targets and ``ns`` the modules."""
    if isinstance(expr, Ref):
        return env[expr.name]
    if isinstance(expr, Attr):
        return resolve_path(expr.path, ns)
    if isinstance(expr, Method):
        return getattr(evaluate(expr.value, env, ns), expr.name)
    if isinstance(expr, Call):
        fn = resolve_path(expr.fn, ns) if isinstance(expr.fn, str) else evaluate(expr.fn, env, ns)
        return fn(*(evaluate(a, env, ns) for a in expr.args),
                  **{k: evaluate(v, env, ns) for k, v in expr.kwargs.items()})
    if isinstance(expr, Index):
        key = expr.key[0] if len(expr.key) == 1 else tuple(expr.key)   # as ``v[k]`` is written: tuples too
        return evaluate(expr.value, env, ns)[key]
    if isinstance(expr, tuple):
        return tuple(evaluate(v, env, ns) for v in expr)
    if isinstance(expr, list):
        return [evaluate(v, env, ns) for v in expr]
    if isinstance(expr, dict):
        return {k: evaluate(v, env, ns) for k, v in expr.items()}
    if isinstance(expr, Function):
        return _closure(expr, env, ns)
    return expr


def _closure(function: Function, env: dict[str, Any], ns: dict[str, Any]):
    def run(*args):
        local = {**env, **dict(zip(function.params, args))}
        for step in function.steps:
            value = evaluate(step.expr, local, ns)
            if step.target:
                local[step.target] = value
        return local[function.result]
    return run


def gradient_call(program: Program) -> str:
    """The backward pass's own framework call (``torch.autograd.grad(y, [x, weight], grad_outputs=dy_native)``),
    for the record of a gradient result; empty for a forward program."""
    functions = {s.target for s in program.steps if isinstance(s.expr, Function)}
    inline: dict[str, str] = {}
    calls = []
    for step in program.steps:
        if step.phase == "call" and step.target and not isinstance(step.expr, Function):
            text = render(step.expr, frozenset(), inline)
            if step.backward:
                calls.append(f"{step.target} = {text}")
            elif _mentions(step.expr, functions):   # a functional vjp: its pullback reads jax.vjp(forward, x)[1]
                inline[step.target] = text
    return "; ".join(calls)


def main_call(program: Program) -> Optional[Step]:
    """The first call-phase step (the operator's own framework call)."""
    return next((s for s in program.steps if s.phase == "call"), None)
