"""Backend registry: built-in adapters plus the ``conform.backends`` entry points.

Backends are referenced as ``"module:Class"`` strings so that the parent
process never imports a framework: only the backend's worker process does.
A third-party package registers its own backend with::

    [project.entry-points."conform.backends"]
    jax.numpy = "conform_jax:JaxBackend"
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from typing import Optional

BUILTIN: dict[str, str] = {
    "numpy": "harness.backends.numpy_ref:NumpyBackend",
    "numba": "harness.backends.numba_kernel:NumbaBackend",
    "tf.nn": "harness.backends.tf_nn:TfNnBackend",
    "torch.functional": "harness.backends.torch_functional:TorchFunctionalBackend",
    "mindspore.nn": "harness.backends.mindspore_nn:MindsporeNnBackend",
    "tf.keras": "harness.backends.tf_keras:TfKerasBackend",
}

ENTRY_POINT_GROUP = "conform.backends"


@functools.cache
def registry() -> dict[str, str]:
    """Every known backend id -> ``"module:Class"``; entry points may add ids, not replace built-ins."""
    found = dict(BUILTIN)  # cached: callers must not mutate the result
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


@functools.cache
def load_class(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def select(spec: Optional[str], known: dict[str, str]) -> list[str]:
    """Backend ids for ``--backends``: exact ids or framework prefixes (``tf`` -> every ``tf.*``).

    Without ``spec``: every *available* backend (DESIGN.md §6); naming an
    unavailable one explicitly gives ``skipped`` results that say why.
    Raises ``ValueError`` naming the unknown entries (a usage error, exit 2).
    """
    if not spec:
        return [b for b in known if load_class(known[b]).availability()[0]]
    chosen: list[str] = []
    unknown = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        matches = [b for b in known if b == item or b.split(".")[0] == item]
        if not matches:
            unknown.append(item)
        chosen += [m for m in matches if m not in chosen]
    if unknown:
        raise ValueError(f"unknown backend(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return chosen


def matches(backend_id: str, selectors: list[str]) -> bool:
    """Whether a case's ``backends:`` list (ids or framework prefixes) includes ``backend_id``."""
    return any(backend_id == s or backend_id.split(".")[0] == s for s in selectors)
