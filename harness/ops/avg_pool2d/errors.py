"""Error inputs of avg_pool2d: one call per rule of the semantics that rejects calls (``InvalidCall.field``).

``cases/avg_pool2d/errors.yaml`` poses these (and more) to every backend;
``tests/test_ops.py`` checks that the semantics and the loader reject each.
"""

from __future__ import annotations

from harness.ops.spec import ErrorInput

BASE = {"input": [1, 2, 4, 4]}

ERROR_INPUTS = (
    ErrorInput("window-larger-than-input", BASE | {"kernel_size": 5, "padding": "valid"}, "kernel_size"),
    ErrorInput("window-larger-even-with-ceil-mode", BASE | {"kernel_size": 6, "stride": 2, "ceil_mode": True},
               "kernel_size"),
    ErrorInput("window-of-padding-only-not-counted", BASE | {"kernel_size": 2, "padding": [2, 0, 0, 0]},
               "padding"),
)
