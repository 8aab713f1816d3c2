"""Backward programs: a forward ``Program`` turned into one that also computes vector–Jacobian products
through the framework's own autodiff.

Note [Gradients]
----------------
A backward case asks each backend for ``<dy, f(x, w, b)>``'s gradients, for a
seeded cotangent ``dy`` of the output's shape (``Call.arrays["dy"]``, case
layout, exactly representable in the case dtype). The adapter's forward
``Program`` says, besides its steps, which framework values hold the
canonical operands (``Program.leaves``: the tensor made from ``x``, or a
module's ``weight`` Parameter, with the permutation from the canonical
layout) and which value is the output (``Program.result``, with the
permutation to the case layout). ``differentiate`` wraps the same steps in
the framework's own autodiff and nothing else:

* torch: leaves get ``requires_grad_()``, then ``torch.autograd.grad(y,
  leaves, grad_outputs=dy)``;
* TensorFlow (tf.nn, tf.keras): the forward steps as a function run under
  ``tf.GradientTape`` (``tape_vjp`` below, embedded in reproducers), then
  ``tape.gradient(y, leaves, output_gradients=dy)``;
* JAX: ``jax.vjp(forward, *leaves)``, then the pullback of ``dy``;
* MindSpore: ``mindspore.vjp(forward, *inputs, weights=parameters)``.

So the gradient is exactly what a user of that surface gets when training
through the same call, emulation steps included (an emulated crop is
differentiated with the crop). ``dy`` enters in the result's native layout
and dtype; each gradient leaves as float64 NumPy in the canonical layout
(``Program.gradients``). The steps of the backward pass are marked
``Step.backward``: the worker runs them only when the forward output has
``dy``'s shape (otherwise the forward's failure is the answer), and an error
they raise is the framework failing the *gradient* (``Outcome.failed_in``).

A leaf that is a step's target must be assigned once (a padded copy of
``x`` gets a name of its own), else the gradient would be taken with
respect to the wrong tensor; ``differentiate`` checks this.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from harness.backends.base import Call, Unsupported
from harness.backends.program import Attr, Function, Import, Index, Leaf, Method, Program, Ref, Step, _mentions
from harness.backends.program import Call as Expr


def inverse(perm: Optional[tuple[int, ...]]) -> Optional[tuple[int, ...]]:
    if perm is None:
        return None
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def native_cotangent(program: Program) -> Expr:
    """``dy`` (NumPy, case layout) in the layout of ``program.result`` (a contiguous NumPy array)."""
    perm = inverse(program.result.perm)
    dy = Ref("dy") if perm is None else Expr("numpy.transpose", (Ref("dy"), perm))
    return Expr("numpy.ascontiguousarray", (dy,))


def gradient_steps(program: Program, grads: str, to_numpy: Callable[[object], object]) -> list[Step]:
    """``grad_<operand> = <grads[i] as float64 NumPy in the canonical layout>`` for each leaf."""
    steps = []
    for i, leaf in enumerate(program.leaves):
        value = to_numpy(Index(Ref(grads), (i,)))
        perm = inverse(leaf.perm)
        if perm is not None:
            value = Expr("numpy.transpose", (value, perm))
        steps.append(Step(f"grad_{leaf.operand}", value, "finish", backward=True))
    return steps


def _check_leaves(program: Program) -> None:
    targets = [step.target for step in program.steps if step.target]
    for leaf in program.leaves:
        if isinstance(leaf.value, Ref) and targets.count(leaf.value.name) != 1:
            raise AssertionError(f"leaf {leaf.operand!r}: target {leaf.value.name!r} must be assigned exactly "
                                 f"once (it is assigned {targets.count(leaf.value.name)} times)")


def split(program: Program) -> tuple[list[Step], list[Step], list[Step]]:
    """(prepare, body, tail): ``prepare`` runs through the last assignment of a leaf and on while the steps
    are adapter preparation that reads no leaf; the body runs from there through the last step that assigns
    the result (so adapter code on a leaf, such as a kernel regrouped after its conversion, is
    differentiated); the tail (conversion to NumPy) follows. A value an attribute leaf belongs to (the cell
    of ``Method(Ref("net"), "weight")``) is built before the body, framework call though it is: the
    Parameters it owns are handed to the vjp as weights, so they must exist outside the function."""
    steps = list(program.steps)
    leaves = {leaf.value.name for leaf in program.leaves if isinstance(leaf.value, Ref)}
    owners = {_owner(leaf.value) for leaf in program.leaves if not isinstance(leaf.value, Ref)} - {None}
    assigned = max((i for i, s in enumerate(steps) if s.target in leaves), default=-1)
    start = next((i for i in range(assigned + 1, len(steps))
                  if steps[i].phase != "prepare" or _mentions(steps[i].expr, leaves)), len(steps))
    start = max([start] + [i + 1 for i, s in enumerate(steps) if s.target in owners])
    for i, step in enumerate(steps[:start]):
        seen = {s.target for s in steps[:i] if s.target in leaves}
        if step.target in owners:
            continue
        if step.phase != "prepare" or (step.target not in leaves and _mentions(step.expr, seen)):
            raise AssertionError(f"step {step.target or i!r} runs before the last leaf is assigned but is the "
                                 "framework's call or reads a leaf: assign every leaf first")
    last = max(i for i, s in enumerate(steps) if s.target == program.result.value.name)
    return steps[:start], steps[start:last + 1], steps[last + 1:]


def _owner(value) -> Optional[str]:
    """The target an attribute leaf hangs off (``net`` of ``net.weight``), if any."""
    while isinstance(value, (Method, Index)):
        value = value.value
    return value.name if isinstance(value, Ref) else None


def functional(program: Program, call_vjp: Callable[[Ref, tuple], Expr], to_numpy, dy_tensor,
               flatten: Optional[Callable[[Ref], Expr]] = None, splitter=split,
               imports: tuple[Import, ...] = ()) -> Program:
    """The backward program of a framework with a functional vjp (``jax.vjp``, ``mindspore.vjp``,
    ``tape_vjp``): ``forward`` defined from the body steps over the leaves that are step targets,
    ``pair = <vjp>(forward, ...)``, ``y = pair[0]``, the tail, then ``grads = pair[1](dy)``. ``flatten``:
    for a vjp whose gradients come nested (``mindspore.vjp`` with weights: ``((dx,), (dw, db))``), the
    expression of ``vjp_out`` that is the flat tuple in the order of ``program.leaves``. ``splitter``: where
    the function's body starts and ends (``split``); ``imports``: modules the vjp call adds."""
    prepare, body, tail = splitter(program)
    inputs = tuple(leaf.value.name for leaf in program.leaves if isinstance(leaf.value, Ref))
    result = program.result.value.name
    steps = prepare + [
        Step("forward", Function(inputs, tuple(body), result), "prepare",
             comment="the forward call, as the function autodiff differentiates"),
        Step("pair", call_vjp(Ref("forward"), inputs), "call", timed=True),
        Step(result, Index(Ref("pair"), (0,)), "finish"),
    ] + tail + [
        Step("dy_native", dy_tensor(native_cotangent(program)), "prepare", backward=True),
    ]
    pullback = Expr(Index(Ref("pair"), (1,)), (Ref("dy_native"),))
    if flatten is None:
        steps.append(Step("grads", pullback, "call", timed=True, backward=True))
    else:
        steps += [Step("vjp_out", pullback, "call", timed=True, backward=True),
                  Step("grads", flatten(Ref("vjp_out")), "finish", backward=True)]
    return _backward(program, steps + gradient_steps(program, "grads", to_numpy), imports)


def _backward(program: Program, steps: list[Step], imports: tuple[Import, ...] = ()) -> Program:
    return dataclasses.replace(
        program, steps=tuple(steps), imports=program.imports + imports + (Import("numpy"),),
        operands=program.operands + ("dy",),
        gradients=tuple((leaf.operand, f"grad_{leaf.operand}") for leaf in program.leaves))


# ---------------------------------------------------------------- per framework

def torch_backward(program: Program, call: Call) -> Program:
    """``requires_grad_()`` on the leaves made from operands, ``torch.autograd.grad`` after the forward."""
    steps: list[Step] = []
    for step in program.steps:
        steps.append(step)
        if any(isinstance(leaf.value, Ref) and leaf.value.name == step.target for leaf in program.leaves):
            steps.append(Step(None, Expr(Method(Ref(step.target), "requires_grad_")), "prepare"))
    dtype = Attr(f"torch.{call.dtype}")
    steps += [
        Step("dy_native", Expr(Method(Expr("torch.from_numpy", (native_cotangent(program),)), "to"), (dtype,)),
             "prepare", backward=True),
        Step("grads", Expr("torch.autograd.grad", (program.result.value, [leaf.value for leaf in program.leaves]),
                           {"grad_outputs": Ref("dy_native")}), "call", timed=True, backward=True),
    ]
    to_numpy = lambda g: Expr(Method(Expr(Method(g, "to"), (Attr("torch.float64"),)), "numpy"))  # noqa: E731
    return _backward(program, steps + gradient_steps(program, "grads", to_numpy))


def tape_backward(program: Program, call: Call) -> Program:
    """TensorFlow (tf.nn, and tf.keras on its TensorFlow backend): the steps that compute the output from the
    leaves as ``forward``, run by ``tape_vjp`` (``harness/backends/tf_tape.py``, embedded in reproducers)
    under a ``tf.GradientTape``; the pullback is ``tape.gradient(y, leaves, output_gradients=dy)``."""
    if program.framework == "keras":   # Keras' own tensor functions: the program imports only keras
        def dy_tensor(dy: Expr) -> Expr:
            return Expr("keras.ops.cast", (Expr("keras.ops.convert_to_tensor", (dy,)), call.dtype))

        def to_numpy(g) -> Expr:
            return Expr("keras.ops.convert_to_numpy", (Expr("keras.ops.cast", (g, "float64")),))
    else:
        def dy_tensor(dy: Expr) -> Expr:
            return Expr("tf.cast", (Expr("tf.constant", (dy, Attr("tf.float64"))), Attr(f"tf.{call.dtype}")))

        def to_numpy(g) -> Expr:
            return Expr(Method(Expr("tf.cast", (g, Attr("tf.float64"))), "numpy"))

    def call_vjp(fn: Ref, inputs: tuple) -> Expr:
        return Expr("harness.backends.tf_tape.tape_vjp", (fn, *(Ref(name) for name in inputs)),
                    {"sources": [leaf.value for leaf in program.leaves]})

    return functional(program, call_vjp, to_numpy, dy_tensor, splitter=_split_at_first_read,
                      imports=(Import("harness.backends.tf_tape", names=("tape_vjp",)),))


def _split_at_first_read(program: Program) -> tuple[list[Step], list[Step], list[Step]]:
    """``split`` for a tape: the body starts at the first step that reads a leaf made by a step (the input
    tensor), not after the last leaf's assignment. A Keras layer is built and given its weights before that,
    outside the function, so its kernel Variable (a leaf given as ``net.kernel``) exists when the tape starts
    watching it; the layer's own calls (and the pads, crops and bias adds around them) are inside."""
    inputs = {leaf.value.name for leaf in program.leaves if isinstance(leaf.value, Ref)}
    steps = list(program.steps)
    start = next(i for i, s in enumerate(steps) if s.target not in inputs and _mentions(s.expr, inputs))
    last = max(i for i, s in enumerate(steps) if s.target == program.result.value.name)
    return steps[:start], steps[start:last + 1], steps[last + 1:]


def jax_backward(program: Program, call: Call) -> Program:
    """``pair = jax.vjp(forward, *leaves)`` over the steps between the leaves and the result, then
    ``pair[1](dy)`` with ``dy`` a jax array of the case dtype; gradients as float64 NumPy."""
    dtype = Attr(f"jax.numpy.{call.dtype}")
    return functional(
        program,
        lambda fn, inputs: Expr("jax.vjp", (fn, *(Ref(name) for name in inputs))),
        lambda g: Expr("numpy.asarray", (g,), {"dtype": Attr("numpy.float64")}),
        lambda dy: Expr("jax.numpy.asarray", (dy,), {"dtype": dtype}))


def mindspore_backward(program: Program, call: Call) -> Program:
    """``mindspore.vjp(forward, *tensors, weights=[net.weight, ...])`` in PyNative mode, as the adapters run:
    tensors made from operands are the function's inputs, a cell's Parameters its ``weights``. With weights
    the pullback answers ``((d_inputs...), (d_weights...))``, flattened here into the leaves' order."""
    weights = [leaf.value for leaf in program.leaves if not isinstance(leaf.value, Ref)]
    kwargs = {"weights": weights} if weights else {}

    def call_vjp(fn: Ref, inputs: tuple) -> Expr:
        return Expr("mindspore.vjp", (fn, *(Ref(name) for name in inputs)), kwargs)

    def flatten(nested: Ref) -> tuple:
        position = {"input": 0, "weight": 0}
        out = []
        for leaf in program.leaves:
            kind = "input" if isinstance(leaf.value, Ref) else "weight"
            out.append(Index(Index(nested, (0 if kind == "input" else 1,)), (position[kind],)))
            position[kind] += 1
        return tuple(out)

    wide = "float64" if call.dtype == "float64" else "float32"   # NumPy -> Tensor as the adapters convert

    def dy_tensor(dy: Expr) -> Expr:
        return Expr(Method(Expr("mindspore.Tensor", (dy, Attr(f"mindspore.{wide}"))), "astype"),
                    (Attr(f"mindspore.{call.dtype}"),))

    def to_numpy(grad) -> Expr:
        return Expr(Method(Expr(Method(grad, "asnumpy")), "astype"), ("float64",))

    backward = functional(program, call_vjp, to_numpy, dy_tensor, flatten if weights else None)
    # PyNative dispatches asynchronously: wait for the backward kernels inside the timed call, so a kernel that
    # fails to launch is the framework failing the gradient, not the conversion to NumPy after it.
    steps = list(backward.steps)
    pullback = next(i for i, s in enumerate(steps) if s.backward and s.phase == "call")
    steps.insert(pullback + 1, Step(None, Expr("mindspore.runtime.synchronize"), "call", timed=True, backward=True))
    return dataclasses.replace(backward, steps=tuple(steps))


DIFFERENTIATORS: dict[str, Callable[[Program, Call], Program]] = {
    "torch": torch_backward, "tensorflow": tape_backward, "keras": tape_backward, "jax": jax_backward,
    "mindspore": mindspore_backward}


def differentiate(program: Program, call: Call) -> Program:
    """The backward program of ``program`` (its fallback's too); ``Unsupported`` when the adapter declared no
    differentiable operands for this call or conform has no autodiff for its framework."""
    if not program.leaves or program.result is None:
        raise Unsupported(f"no gradient: the adapter declares no differentiable operands for this {call.op} call")
    backward = DIFFERENTIATORS.get(program.framework)
    if backward is None:
        raise Unsupported(f"no gradient: conform has no autodiff for {program.framework}")
    _check_leaves(program)
    fallback = program.fallback
    if fallback is not None:
        fallback = dataclasses.replace(fallback, program=differentiate(fallback.program, call))
    return dataclasses.replace(backward(program, call), fallback=fallback)


__all__ = ["Leaf", "differentiate", "functional", "gradient_steps", "jax_backward", "mindspore_backward",
           "native_cotangent", "split", "tape_backward", "torch_backward"]
