"""Error inputs of conv2d: one call per rule of the semantics that rejects calls.

Each names the field the rejection blames (``InvalidCall.field``).
``tests/test_ops.py`` checks them against the semantics; the suite's
``cases/conv2d/errors.yaml`` poses these rules (and more) to every backend.
"""

from __future__ import annotations

from harness.ops.spec import ErrorInput

BASE = {"input": [1, 4, 5, 6], "out_channels": 4, "kernel_size": 3}

ERROR_INPUTS = (
    ErrorInput("input-channels-not-divisible", BASE | {"groups": 3, "out_channels": 3}, "groups"),
    ErrorInput("output-channels-not-divisible", BASE | {"groups": 2, "out_channels": 3}, "groups"),
    ErrorInput("kernel-larger-than-input-valid", BASE | {"kernel_size": 7, "padding": "valid"}, "kernel_size"),
    ErrorInput("dilated-kernel-larger-than-input", BASE | {"dilation": 3}, "kernel_size"),
    ErrorInput("kernel-larger-than-padded-input", BASE | {"kernel_size": 9, "padding": [1, 1, 1, 1]}, "padding"),
)
