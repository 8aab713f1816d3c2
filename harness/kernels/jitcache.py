"""Numba's on-disk cache for the kernels, made to notice edits of the shared tile code.

Numba keys a cached function on the contents of its own source file only. A
kernel's cached machine code also holds what it took from
``harness/kernels/tiles.py``, ``pixel_tiles.py``, ``gemm_tiles.py``, ``packing.py``, ``tasks.py``,
``rows.py`` and ``winograd_tiles.py`` (``@intrinsic`` micro-kernels and inlined helpers are compiled into the caller), so an edit there would
leave every kernel's cache stale: old code, silently. Importing this module (``tiles``
does, before any kernel is decorated) puts a cache locator in front of
Numba's own: for functions of the ``harness`` package it delegates to the
locator Numba would have used and adds the digest of the shared sources to
the source stamp, so both kinds of edit recompile.

This uses Numba's locator list (``numba.core.caching.CacheImpl._locator_classes``,
``_CacheImpl`` before Numba 0.60), which is not public API; without it the
module does nothing and the cache behaves as plain Numba.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core import caching

__all__ = ["SHARED_SOURCES"]

SHARED_SOURCES = tuple(Path(__file__).with_name(name)
                       for name in ("tiles.py", "pixel_tiles.py", "gemm_tiles.py", "packing.py", "tasks.py", "rows.py",
                                    "winograd_tiles.py"))
_PACKAGE = "harness."


def _digest() -> bytes:
    h = hashlib.sha256()
    for path in SHARED_SOURCES:
        h.update(path.read_bytes())
    return h.digest()


class _SharedSourceLocator(caching._CacheLocator):
    """Numba's locator for the function, with the shared sources' digest in the stamp."""

    def __init__(self, inner):
        self._inner = inner

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_source_stamp(self):
        return self._inner.get_source_stamp(), _digest()

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if not (getattr(py_func, "__module__", None) or "").startswith(_PACKAGE):   # None: exec'd code
            return None
        for other in _LOCATORS:
            if other is not cls:
                inner = other.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner)
        return None


_IMPL = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
_LOCATORS = getattr(_IMPL, "_locator_classes", None)
if isinstance(_LOCATORS, list) and _SharedSourceLocator not in _LOCATORS:
    _LOCATORS.insert(0, _SharedSourceLocator)
