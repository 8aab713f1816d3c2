"""The one interface every backend implements (built-in or third-party).

A backend is one API surface of one framework (DESIGN.md §3). It lives in a
worker process: ``setup()`` imports the framework once, then ``run(call)`` is
called per case. For each operator the backend has a method of that name
(``conv2d_transpose(call)``); a missing method means the backend does not
implement the operator, which is reported as ``unsupported``. The built-in
adapters' methods return a ``Program`` (the native call as data, Note [Native
programs] in ``program.py``), which ``run`` executes and which the recorded
``native_call`` and the reproducer are rendered from; a method may also call
the framework itself and return a ``Native`` (third-party adapters).

Adapters call the framework with its own native parameters. They emulate a
concept only where the API has no parameter for it, and say so through
``Native.emulated`` and ``Native.notes``. A call the backend cannot express at
all raises ``Unsupported(reason)``. Anything the framework raises is the
framework's answer and is recorded as such.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Union

import numpy as np

from harness import envs
from harness.backends import program as programs
from harness.backends.program import Program


class Unsupported(Exception):
    """The backend cannot express this call (dtype, layout, groups, ...)."""


class NativeParamError(ValueError):
    """A native parameter a surface does not have, or of the wrong type/value: ``.param`` names it."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}" if param else message)
        self.param = param
        self.message = message


@dataclass
class Call:
    """One operator call, in canonical form, as sent to a worker."""

    op: str
    case_id: str
    params: dict[str, Any]            # canonical params (pairs expanded, padding as list or mode)
    resolved: Optional[dict]          # the operator's Resolved.as_dict(), None for a call the semantics rejects
    dtype: str
    arrays: dict[str, np.ndarray]     # canonical operands, float64, exactly representable in dtype
    expects_error: bool = False
    #: Backward: the operands whose gradients are asked for (``arrays["dy"]`` is the cotangent, case layout;
    #: Note [Gradients] in ``harness/backends/autodiff.py``). Empty: the forward call only.
    gradients: tuple[str, ...] = ()

    @property
    def layout(self) -> str:
        return self.params.get("layout", "NCHW")


@dataclass
class Native:
    """What an adapter returns: the output and how it was obtained."""

    output: np.ndarray                # in the case's layout; any float dtype
    native_call: str                  # the framework call, as copyable code
    emulated: bool = False
    notes: list[str] = field(default_factory=list)
    #: The precision this call accumulated in, when the adapter knows the kernel path the framework
    #: took (overrides ``Backend.accumulation``; Note [Tolerance model] in harness/compare.py).
    accumulation: Optional[str] = None
    program: Optional[Program] = None      # what was run, when the adapter described it as a Program
    #: Backward calls: operand -> its gradient (canonical layout); None when the forward output's shape
    #: differs from the cotangent's, so no gradient was asked of the framework.
    gradients: Optional[dict[str, np.ndarray]] = None


@dataclass
class Outcome:
    """The worker's answer to one call."""

    status: str                       # ok | error | unsupported
    output: Optional[np.ndarray] = None
    native_call: str = ""
    emulated: bool = False
    notes: list[str] = field(default_factory=list)
    error_type: str = ""
    error_message: str = ""
    detail: str = ""                  # traceback for errors, reason for unsupported
    duration_ms: Optional[float] = None
    #: Who raised an error: "framework" (inside ``Backend.native()``: the framework's answer) or
    #: "adapter" (conform's own code around it: a harness bug, never counted as a rejection).
    origin: str = "framework"
    accumulation: Optional[str] = None   # ``Native.accumulation``: this call's, if the adapter knows it
    program: Optional[Program] = None    # the program run (or attempted, for an error): reproducers' source
    gradients: Optional[dict[str, np.ndarray]] = None   # ``Native.gradients`` (backward calls)
    #: For an error of a backward call: "forward" (the forward steps raised) or "gradient" (the backward ones).
    failed_in: str = ""
    gradient_call: str = ""             # ``program.gradient_call`` of a backward call
    #: The worker's whole time on the call (conversions, the framework's own set-up, the native call,
    #: autodiff), set by the worker: what a perfect schedule could not avoid (``harness.runner`` ``timing``).
    worker_ms: Optional[float] = None
    #: The CPU time the worker process (all its threads) spent on the call, same span: the call's work in
    #: core-seconds, which other processes competing for the cores do not inflate (Note [Throughput]).
    worker_cpu_ms: Optional[float] = None


def first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""


class Backend:
    """Base class: subclass, set the class attributes, implement ``setup`` and op methods."""

    id: ClassVar[str]                 # e.g. "tf.nn"
    framework: ClassVar[str]          # display name, e.g. "tensorflow"
    distribution: ClassVar[Optional[str]] = None   # PyPI name for the version, e.g. "tensorflow-cpu"
    import_name: ClassVar[Optional[str]] = None    # module whose presence makes the backend available
    #: conform's own implementation (the oracle run in the case dtype, the numba kernel), not a framework
    #: anyone ports between: left out of the per-case framework spread.
    in_house: ClassVar[bool] = False
    #: Case dtype -> the precision this backend accumulates in, where it differs (Note [Tolerance model]).
    accumulation: ClassVar[dict[str, str]] = {}
    #: Resident memory of a worker with the framework set up, before any data (harness/memory.py adds it
    #: to a case's estimate); the built-in adapters set what they measured, plus a margin.
    resident_bytes: ClassVar[int] = 512 << 20
    #: Operator -> canonical parameter -> how this API spells it (``NativeParam``); read by
    #: ``conform mapping``, checked against the adapter's real calls by tests/test_mapping.py.
    PARAMETERS: ClassVar[dict[str, dict[str, "NativeParam"]]] = {}
    #: The operator methods only build a ``Program`` and touch no framework, so the parent may call them
    #: (``describe``) to reproduce a call whose worker crashed or timed out.
    plans_calls: ClassVar[bool] = False
    #: Variables the worker process starts with, unless the user's environment sets them: for libraries that
    #: read their settings once, as they load (``harness.envs.launch``).
    worker_variables: ClassVar[dict[str, str]] = {}
    #: The environment the worker runs in, a key of ``harness.envs.ENVIRONMENTS`` (Note [Environments]);
    #: None: conform's own interpreter, and no ``ID@VERSION``.
    environment: ClassVar[Optional[str]] = None
    #: What a worker of this backend needs on the host that runs it, in Ray's resource names: ``CPU``,
    #: ``GPU``, or a custom one such as ``NPU`` (Note [Ray executor], ``harness/ray_executor.py``). Read only
    #: by ``--executor ray``, which places the worker on a node that has it and holds it for the run.
    resources: ClassVar[dict[str, float]] = {"CPU": 1}
    #: Operator -> the inverse of this adapter's mapping (``harness.native.Inverse``, Note [Native
    #: vocabularies]): what ``from_native``/``to_native`` use. Empty: no native vocabulary (in-house backends).
    NATIVE: ClassVar[dict[str, Any]] = {}
    #: Why this backend has no gradients (the reason of its backward results, ``unsupported``); None: its
    #: programs' declared leaves are differentiated (Note [Gradients] in ``harness/backends/autodiff.py``).
    gradient_gap: ClassVar[Optional[str]] = None
    #: Gradients this backend sums in the case dtype whatever its convolutions accumulate in (measured).
    gradient_in_case_dtype: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def native_inverse(cls, op: str):
        inverse = cls.NATIVE.get(op)
        if inverse is None:
            raise NativeParamError("op", f"{cls.id} has no native form of {op!r}"
                                   + (f" (it has: {', '.join(cls.NATIVE)})" if cls.NATIVE else ""))
        return inverse

    @classmethod
    def from_native(cls, op: str, native: dict, input_shape: list[int]) -> dict:
        """The canonical case fields (as in a case file, without ``input``) that this surface's native call
        means. ``native``: the call in the surface's own vocabulary, tensors given by their shape (e.g.
        tf.nn: ``{filters: [3, 3, 16, 8], output_shape: [1, 32, 32, 16], strides: 2, padding: SAME}``);
        ``input_shape``: the input in the native layout (the case's ``input``). Raises ``NativeParamError``
        for an unknown, ill-typed or inexpressible native parameter (Note [Native vocabularies])."""
        return cls.native_inverse(op).from_native(native, input_shape)

    @classmethod
    def to_native(cls, op: str, program: Program, shapes: Optional[dict] = None) -> dict:
        """The native parameters a Program built by this adapter passes, normalised (the inverse of
        ``from_native`` on the adapter's own calls). ``shapes``: the canonical operand shapes
        (``harness.native.operand_shapes(call)``), needed where a tensor's shape is a parameter (tf.nn's
        ``filters``). For an ``emulated`` program these are the framework call's own parameters; its notes
        say what is done around the call."""
        return cls.native_inverse(op).to_native(program, shapes)

    def __init__(self):
        self._duration_ms: Optional[float] = None
        self._native_exception: Optional[BaseException] = None
        self._program: Optional[Program] = None
        self._in_backward = False

    @classmethod
    def describe(cls, call: "Call") -> Optional[Program]:
        """The program this backend would run for ``call`` (in any process), or None if it cannot say."""
        method = getattr(cls, call.op, None)
        if not cls.plans_calls or method is None:
            return None
        try:
            planned = method(cls(), call)
            if isinstance(planned, Program) and call.gradients:
                from harness.backends.autodiff import differentiate
                planned = differentiate(planned, call)
        except Exception:  # noqa: BLE001 - Unsupported, or a call it cannot pose: nothing to reproduce
            return None
        return planned if isinstance(planned, Program) else None

    # ---- availability, checked in the parent without importing the framework
    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if cls.environment is not None and not envs.ENVIRONMENTS[cls.environment].shared:
            return envs.buildable()   # the framework lives in its own environment, not ours
        if cls.import_name and importlib.util.find_spec(cls.import_name) is None:
            return False, f"{cls.import_name} is not installed"
        return True, ""

    @classmethod
    def version(cls) -> Optional[str]:
        if not cls.distribution:
            return None
        try:
            return importlib.metadata.version(cls.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    @classmethod
    def warm(cls, say: Callable[[str], None] = lambda text: None) -> None:
        """Work a fresh checkout would otherwise do inside its first run's timings (compiling kernels into
        an on-disk cache), done once by ``conform backends --prepare`` in conform's own interpreter;
        ``say`` tells the user what takes the time."""

    # ---- in the worker
    def setup(self) -> None:
        """Import the framework and configure it; called once per worker."""

    @contextlib.contextmanager
    def native(self):
        """Code inside is the framework's own: what it raises is the framework's answer.

        Anything raised outside (layout conversion, argument building) is an
        adapter bug and must not pass for a framework rejecting a call.
        """
        try:
            yield
        except BaseException as exc:
            self._native_exception = exc
            raise

    def timed(self, fn, *args, **kwargs):
        """Run the framework's own call (a native region) and record its wall time (duration_ms)."""
        with self.native():
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            self._duration_ms = (time.perf_counter() - start) * 1e3
        return result

    def run(self, call: Call) -> Outcome:
        method = getattr(self, call.op, None)
        if method is None:
            return Outcome("unsupported", detail=f"{self.id} does not implement {call.op}")
        self._duration_ms = None
        self._native_exception = None
        self._program = None
        self._in_backward = False
        try:
            if call.gradients and self.gradient_gap:
                raise Unsupported(self.gradient_gap)
            native = method(call)
            if isinstance(native, Program) and call.gradients:
                from harness.backends.autodiff import differentiate
                native = differentiate(native, call)
            elif call.gradients:
                raise Unsupported(f"no gradient: {self.id} runs {call.op} without a Program to differentiate")
            if isinstance(native, Program):
                native = self.execute(native, call)
        except Unsupported as exc:
            return Outcome("unsupported", detail=str(exc))
        except Exception as exc:  # the framework's answer (or an adapter bug): judged by the comparator
            native_error = exc is self._native_exception
            gap = self.unsupported_reason(exc) if native_error else None
            if gap:
                return Outcome("unsupported", detail=gap)
            return Outcome("error", error_type=f"{type(exc).__module__}.{type(exc).__name__}",
                           error_message=first_line(str(exc)) or type(exc).__name__,
                           detail=traceback.format_exc(limit=-8), duration_ms=self._duration_ms,
                           origin="framework" if native_error else "adapter",
                           native_call=programs.native_call(self._program) if self._program else "",
                           program=self._program, failed_in=self._failed_in(call),
                           gradient_call=programs.gradient_call(self._program) if self._program else "")
        return Outcome("ok", output=np.asarray(native.output), native_call=native.native_call,
                       emulated=native.emulated, notes=native.notes, duration_ms=self._duration_ms,
                       accumulation=native.accumulation, program=native.program, gradients=native.gradients,
                       gradient_call=programs.gradient_call(native.program) if native.program else "")

    def _failed_in(self, call: Call) -> str:
        if not call.gradients:
            return ""
        return "gradient" if self._in_backward else "forward"

    # ---- programs (Note [Native programs])
    def unsupported_reason(self, exc: BaseException) -> Optional[str]:
        """For an error the framework raised: the reason it is a capability gap of this build (verdict
        ``unsupported``) rather than an answer about the call, else None."""
        return None

    def accumulation_of(self, program: Program, env: dict, call: Call) -> Optional[str]:
        """The precision this call will accumulate in, asked after the operands are prepared (``env``
        holds them); default: the program's own ``accumulation``."""
        return program.accumulation

    def execute(self, program: Program, call: Call) -> Native:
        """Run a program (its fallback when the call phase raises the error it names)."""
        try:
            return self._execute(program, call)
        except Exception as exc:
            fallback = program.fallback
            if fallback is None or exc is not self._native_exception or not fallback.matches(str(exc)):
                raise
            if self.unsupported_reason(exc):
                raise
            self._native_exception = None
            native = self._execute(fallback.program, call)
            native.notes.insert(0, fallback.note.format(error=first_line(str(exc))[:120]))
            return native

    def _execute(self, program: Program, call: Call) -> Native:
        self._program = program
        ns = programs.namespace(program)
        env: dict[str, Any] = dict(call.arrays)
        accumulation, elapsed = program.accumulation, None
        self._in_backward = False
        for index, step in enumerate(program.steps):
            if step.backward and not self._in_backward:
                self._in_backward = True
                if np.shape(env[program.output]) != np.shape(call.arrays["dy"]):
                    break    # the forward's shape is wrong: that is the answer, no gradient is asked for
            if step.phase == "call" and (index == 0 or program.steps[index - 1].phase == "prepare") \
                    and not step.backward:
                accumulation = self.accumulation_of(program, env, call)
            if step.phase != "call":
                value = programs.evaluate(step.expr, env, ns)
            else:
                with self.native():
                    start = time.perf_counter()
                    value = programs.evaluate(step.expr, env, ns)
                    if step.timed:
                        elapsed = (elapsed or 0.0) + time.perf_counter() - start
                        self._duration_ms = elapsed * 1e3
            if step.target:
                env[step.target] = value
        gradients = None
        if program.gradients and all(target in env for _, target in program.gradients):
            gradients = {operand: np.asarray(env[target]) for operand, target in program.gradients}
        return Native(np.asarray(env[program.output]), programs.native_call(program), program.emulated,
                      list(program.notes), accumulation=accumulation, program=program, gradients=gradients)

    @classmethod
    def accumulation_for(cls, dtype: str, outcome: Optional[Outcome] = None, gradient: Optional[str] = None) -> str:
        """The accumulation precision to judge a result by: the call's own if the adapter reported it,
        else this backend's declaration for ``dtype``, else ``dtype`` itself (the conservative default).
        ``gradient``: the result is that operand's gradient (a backend whose backward pass sums one of them
        in other kernels overrides this)."""
        if gradient is not None and gradient in cls.gradient_in_case_dtype:
            return dtype
        if outcome is not None and getattr(outcome, "accumulation", None):
            return outcome.accumulation
        return cls.accumulation.get(dtype, dtype)


    def bench(self, call: Call, warmup: int, repeats: int, warmup_s: float = 0.0) -> Union[list[float], Outcome]:
        """Wall times (ms) of ``repeats`` native calls after a warm-up of at least ``warmup`` calls and
        ``warmup_s`` seconds (Note [Steady state] in ``harness/bench.py``); an Outcome if a call fails."""
        warm_until = time.perf_counter() + warmup_s
        warmed = 0
        while warmed < warmup or time.perf_counter() < warm_until:
            outcome = self.run(call)
            if outcome.status != "ok":
                return outcome
            warmed += 1
        times = []
        for _ in range(repeats):
            outcome = self.run(call)
            if outcome.status != "ok":
                return outcome
            times.append(outcome.duration_ms)
        return times


@dataclass(frozen=True)
class NativeParam:
    """How a backend's API spells one canonical parameter (``Backend.PARAMETERS``, ``conform mapping``).

    ``name``: the native parameter, or None when the API has none. ``position``: its index when the
    adapter passes it positionally (checked against the real signature), in ``call``. ``via``: the native parameter
    that carries the concept when there is no parameter of its own (TF's groups: the filters' shape).
    ``emulated``: the adapter emulates the concept and marks such results ``emulated``.
    ``tests/test_mapping.py`` runs the real adapters and checks every declaration against their calls.
    """

    name: Optional[str]
    type: str = ""
    convention: str = ""
    emulated: bool = False
    via: Optional[str] = None
    position: Optional[int] = None
    #: "api": the function or constructor; "forward": the call of the built object; "state": a tensor loaded
    #: into the built object (``load_state_dict``); "weights": loaded with Keras' ``Layer.set_weights``;
    #: "bias_add": the bias addition after the primitive; another name: that function of the same module
    #: (jax.lax's groups, which only conv_general_dilated has).
    call: str = "api"
