"""A test-only backend that misbehaves on purpose, chosen by case id prefix.

A "damage" case answers correctly but leaves the worker so that its next call, whatever it is, aborts.

Registered through the ``conform.backends`` entry-point group (see the
dist-info folder beside this file; tests put this folder on PYTHONPATH), so
it exercises exactly the path a third-party backend takes. Cases whose id
starts with none of the prefixes get a correct answer from the oracle.
"""

from __future__ import annotations

import ctypes
import os
import time

import numpy as np

from harness.backends.base import Backend, Call, Native
from harness.ops.conv2d_transpose.oracle import reference


class FaultyBackend(Backend):
    id = "faulty"
    framework = "faulty"
    #: Set by a "damage" case: this worker process is damaged, and its next call aborts, as glibc aborts the
    #: innocent call that frees a chunk an earlier kernel overflowed (Note [Damaged workers]).
    damaged = False

    def conv2d_transpose(self, call: Call) -> Native:
        case = call.case_id
        if FaultyBackend.damaged:
            os.abort()
        if case.startswith("damage"):
            FaultyBackend.damaged = True   # and answers correctly: the damage is silent
        if case.startswith("abort"):
            os.abort()
        if case.startswith("segfault"):
            ctypes.string_at(0)
        if case.startswith("exit"):
            os._exit(3)
        if case.startswith("hang"):
            time.sleep(3600)
        if case.startswith("leak"):
            hoard = []
            while True:   # touch every page so resident memory really grows
                hoard.append(np.ones(16 << 20))
        out = reference(call.params, call.arrays)
        if case.startswith("wrong-shape"):
            out = out[..., :-1]
        if case.startswith("raise"):
            raise RuntimeError("faulty backend refuses this call")
        return Native(out, "faulty(x, w)")


class BrokenBackend(Backend):
    """Installed, but its framework cannot start (an import that fails inside the worker)."""

    id = "broken"
    framework = "broken"

    def setup(self) -> None:
        raise ImportError("libbroken.so: cannot open shared object file")
