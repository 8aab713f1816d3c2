"""The Python environments backends' workers run in (DESIGN.md §8, ``ID@VERSION``).

Note [Environments]
-------------------
A framework's pins can disagree with another's (MindSpore 2.10's compiled
kernels need NumPy < 2; the newest JAX needs a newer ``ml_dtypes`` than
TensorFlow allows), and a framework team compares two releases of one
framework in one run. So a backend names an ``Environment`` (the framework's
pinned requirements); its worker runs under that environment's interpreter.

* ``shared=True``: the default version runs in conform's own interpreter (the
  pins agree with conform's ``constraints.txt``); only ``ID@VERSION`` builds an
  environment for it.
* otherwise every run uses a cached environment, built once with ``uv`` under
  ``.conform/envs/`` and reused while its requirements are unchanged.

An environment holds the framework and the worker's own few dependencies
(``WORKER_REQUIREMENTS``); conform's ``harness`` package is linked in, never
copied, so a worker always runs the parent's code. Arrays cross between the
two interpreters as raw bytes (Note [Worker transport] in ``harness/ipc.py``),
so the two sides need not share a NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Environment:
    """A framework's pinned requirements, and which of its distributions ``@VERSION`` moves."""

    name: str
    requirements: tuple[str, ...]        # exact pins (``name==version``), beyond WORKER_REQUIREMENTS
    versioned: tuple[str, ...]           # distributions ``ID@VERSION`` sets to VERSION (the first names it)
    shared: bool = False                 # the default version runs in conform's own interpreter

    @property
    def distribution(self) -> str:
        return self.versioned[0]


#: What the worker itself imports besides the framework: ``harness.backends`` and the operators' semantics.
WORKER_REQUIREMENTS: tuple[str, ...] = ("pydantic==2.14.4",)

ENVIRONMENTS: dict[str, Environment] = {
    "tensorflow": Environment("tensorflow", ("tensorflow-cpu==2.21.0",), ("tensorflow-cpu",), shared=True),
    "torch": Environment("torch", ("torch==2.13.0",), ("torch",), shared=True),
    # MindSpore 2.10's extension modules were compiled against NumPy 1.x: Tensor.__mul__ raises under NumPy 2.
    "mindspore": Environment("mindspore", ("mindspore==2.10.0", "numpy==1.26.4"), ("mindspore",)),
    "jax": Environment("jax", ("jax==0.10.2", "jaxlib==0.10.2"), ("jax", "jaxlib")),
    "onnxruntime": Environment("onnxruntime", ("onnxruntime==1.32.0", "onnx==1.23.2"), ("onnxruntime",)),
}
