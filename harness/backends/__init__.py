"""Backend registry: built-in adapters plus the ``conform.backends`` entry points.

Backends are referenced as ``"module:Class"`` strings so that the parent
process never imports a framework: only the backend's worker process does.
A third-party package registers its own backend with::

    [project.entry-points."conform.backends"]
    jax.numpy = "conform_jax:JaxBackend"

A run's backend id may carry a version, ``ID@VERSION`` (``onnxruntime@1.31.1``):
the same adapter, run in an environment holding that release (Note
[Environments] in ``harness/envs.py``). Everything keyed by the adapter (its
class, the registry's ``backend:`` selectors) reads the id without the version.
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
    "torch.nn": "harness.backends.torch_nn:TorchNnBackend",
    "mindspore.ops": "harness.backends.mindspore_ops:MindsporeOpsBackend",
    "jax.lax": "harness.backends.jax_lax:JaxLaxBackend",
    "onnxruntime": "harness.backends.onnx_runtime:OnnxRuntimeBackend",
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


def split_version(backend_id: str) -> tuple[str, Optional[str]]:
    """``"onnxruntime@1.31.1"`` -> ``("onnxruntime", "1.31.1")``; an id without a version -> ``(id, None)``."""
    base, at, version = backend_id.partition("@")
    return base, (version if at else None)


def backend_class(backend_id: str):
    """The adapter class of a (possibly versioned) backend id."""
    return load_class(registry()[split_version(backend_id)[0]])


def select(spec: Optional[str], known: dict[str, str]) -> list[str]:
    """Backend ids for ``--backends``: exact ids or framework prefixes (``tf`` -> every ``tf.*``).

    Without ``spec``: every *available* backend (DESIGN.md §6); naming an
    unavailable one explicitly gives ``skipped`` results that say why.
    ``ID@VERSION`` (or ``FRAMEWORK@VERSION``) selects the same surfaces at that
    release; only surfaces that declare an environment can take a version.
    Raises ``ValueError`` naming the unknown entries (a usage error, exit 2).
    """
    if not spec:
        return [b for b in known if load_class(known[b]).availability()[0]]
    chosen: list[str] = []
    unknown, unversioned = [], []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        base, version = split_version(item)
        matches = [b for b in known if b == base or b.split(".")[0] == base]
        if not matches or version == "":
            unknown.append(item)
            continue
        if version is not None and not _is_release(version):
            raise ValueError(f"{item}: {version!r} is not a version (PEP 440, e.g. onnxruntime@1.31.1)")
        if version is not None:
            unversioned += [b for b in matches if load_class(known[b]).environment is None]
            matches = [f"{b}@{version}" for b in matches]
        chosen += [m for m in matches if m not in chosen]
    if unknown:
        raise ValueError(f"unknown backend(s): {', '.join(unknown)}; known: {', '.join(known)}")
    if unversioned:
        raise ValueError(f"{', '.join(unversioned)}: conform's own kernels have no versions to choose "
                         "(ID@VERSION needs a framework surface)")
    return chosen


def _is_release(version: str) -> bool:
    """A PEP 440 version (it also keeps ``ID@../x`` from naming a folder outside the environments' cache)."""
    from packaging.version import InvalidVersion, Version
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def matches(backend_id: str, selectors: list[str]) -> bool:
    """Whether a case's ``backends:`` list (ids or framework prefixes) includes ``backend_id`` (any version)."""
    base = split_version(backend_id)[0]
    return any(base == s or base.split(".")[0] == s for s in selectors)
