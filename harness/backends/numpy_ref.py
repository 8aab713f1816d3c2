"""Backend ``numpy``: the operator's oracle run in the case's dtype (DESIGN.md §3).

NumPy has no bfloat16; a bfloat16 case is computed in float32 and rounded to
bfloat16, and the result says so (``emulated``). A call the canonical
semantics rejects is rejected with the semantics' reason, as every API would
reject it, instead of computing whatever the definition gives.

An oracle with compiled loops and threads (Note [Oracle threads] in
``harness/kernels/oracle_threads.py``) takes ``threads``: here it gets
the worker's cores, since the backend has them to itself while it runs
(the parent's own oracle calls keep the default, one).

Note [Freed memory kept for reuse]
----------------------------------
Every oracle call allocates megabytes: its operands converted to float64
and its temporaries. glibc's malloc serves blocks above a threshold (128 KiB,
raised to the largest block freed so far, up to 32 MiB) with fresh pages from
the kernel and gives the heap's free top back, so which calls get fresh pages
depends on the order of earlier calls' sizes. A fresh page costs a page fault
(about 1.5 µs each on the VMs conform was measured on): conv2d b2 of
benchmarks/ took 0.57 or 2.0 ms, b4 1.1 or 3.9 ms, by the size of the
oracle's blocks alone, 0.87 ms of b2's 2.0 in converting its 2.4 MB weights.
The worker therefore fixes both thresholds (``mallopt``, glibc only): blocks
up to 32 MiB come from the heap, and freed memory stays with the process for
the next call. The worker's footprint is its peak, which it had anyway.

Note [BLAS threads that sleep]
------------------------------
The conv2d oracle lets OpenBLAS's own threads share the product of a single
image of one group (Note [Oracle threads]). After a product, OpenBLAS's
threads spin for 2^28 cycles (its ``THREAD_TIMEOUT``) before they sleep:
0.1 s of a core after each such call, measured, taken from the other
workers of a run. The worker starts with ``OPENBLAS_THREAD_TIMEOUT=4``, the
least OpenBLAS accepts (16 cycles: they sleep at once); b2 of benchmarks/ is
no slower for it (0.59 against 0.58 ms). OpenBLAS reads the variable once,
as it loads, so it is set in the worker's environment
(``Backend.worker_variables``); a value the user set is kept.
"""

from __future__ import annotations

import importlib
import inspect
import os

from harness import ops
from harness.backends.base import Backend, Call
from harness.backends.program import Import, Program, Ref, Step
from harness.backends.program import Call as Expr


def _path(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def semantics_rejection(call: Call, framework: str) -> Program:
    """The in-house answer to a call the semantics rejects: the semantics' own ``InvalidCall``."""
    spec = ops.get(call.op)
    validated = Expr(_path(spec.Params) + ".model_validate", (call.params,))
    return Program(framework, (Import(spec.resolve.__module__), Import(spec.Params.__module__)), (),
                   (Step("y", Expr(_path(spec.resolve), (validated,))),), "y")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def keep_freed_memory(largest=32 << 20) -> bool:
    """Let glibc's malloc serve blocks up to ``largest`` bytes from the heap and keep freed memory for reuse
    (Note [Freed memory kept for reuse]); False where the C library is not glibc."""
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (ImportError, OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # glibc's malloc.h
    return bool(mallopt(M_MMAP_THRESHOLD, largest)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * largest))


def _oracle_modules():
    return [importlib.import_module(spec.oracle.__module__) for spec in ops.OPS.values()]


class NumpyBackend(Backend):
    id = "numpy"
    framework = "numpy"
    in_house = True
    distribution = "numpy"
    import_name = "numpy"
    resident_bytes = 192 << 20      # measured 34 MiB; 170 MiB once a float64 call loads the oracles' compiled loops
    gradient_gap = ("no gradient: NumPy has no autodiff; the float64 gradient oracle (harness/ops/<op>/gradient.py) "
                    "is the reference these results are judged against")
    plans_calls = True
    worker_variables = {"OPENBLAS_THREAD_TIMEOUT": "4"}      # Note [BLAS threads that sleep]
    # bfloat16: computed in float32, rounded. float16 is computed in float16: sums of taps and of
    # window elements are float16 additions (a conv2d whose terms go through one matrix product is
    # summed in float32 by NumPy's float16 matmul and rounded once, which the float16 bound covers),
    # so it keeps the case-dtype default.
    accumulation = {"bfloat16": "float32"}

    def setup(self) -> None:
        keep_freed_memory()

    @classmethod
    def warm(cls, say=lambda text: None) -> None:
        # Into Numba's on-disk cache; a worker loads them at its first float64 call that uses them (about a
        # second: importing Numba), not at start-up, since most cases run in float32 without them.
        say("numpy: compiling the oracles' loops into Numba's on-disk cache (once)")
        for module in _oracle_modules():
            getattr(module, "warm", lambda: None)()

    def oracle(self, call: Call) -> Program:
        """Any operator: its oracle (``OpSpec.oracle``) in the case dtype."""
        if call.resolved is None:
            return semantics_rejection(call, "numpy")
        oracle = ops.get(call.op).oracle
        compute = "float32" if call.dtype == "bfloat16" else call.dtype
        operands = tuple(call.arrays)
        kwargs = {"dtype": compute}
        if "threads" in inspect.signature(oracle).parameters:
            kwargs["threads"] = _cores()
        steps = [Step("params", call.params, "prepare"),
                 Step("arrays", {name: Ref(name) for name in operands}, "prepare"),
                 Step("y", Expr(_path(oracle), (Ref("params"), Ref("arrays")), kwargs), timed=True)]
        imports = (Import("numpy"), Import(oracle.__module__, embed=True))
        notes, emulated = (), False
        if call.dtype == "bfloat16":
            steps.append(Step("y", Expr("harness.data.round_to_dtype", (Ref("y"), "bfloat16")), "finish",
                              comment="NumPy has no bfloat16"))
            imports += (Import("harness.data", names=("round_to_dtype",)),)
            notes, emulated = ("NumPy has no bfloat16: computed in float32, rounded to bfloat16",), True
        return Program("numpy", imports, operands, tuple(steps), "y", emulated, notes)

    def conv2d_transpose(self, call: Call) -> Program:
        return self.oracle(call)

    def conv2d(self, call: Call) -> Program:
        return self.oracle(call)

    def avg_pool2d(self, call: Call) -> Program:
        return self.oracle(call)

    def max_pool2d(self, call: Call) -> Program:
        return self.oracle(call)
