"""Error inputs of conv2d_transpose: one call per rule of the semantics that rejects calls.

Each names the field the rejection blames (``InvalidCall.field``, the
``file:line: field`` of the loader's message). ``tests/test_ops.py`` checks
every operator's error inputs against its semantics; the suite's
``cases/conv2d_transpose/errors.yaml`` poses these rules (and more) to every
backend.
"""

from __future__ import annotations

from harness.ops.spec import ErrorInput

BASE = {"input": [1, 4, 4, 5], "out_channels": 4, "kernel_size": 3}

ERROR_INPUTS = (
    ErrorInput("output-shape-unreachable-same", BASE | {"stride": 2, "padding": "same", "output_shape": [10, 10]},
               "output_shape"),
    ErrorInput("output-shape-unreachable-valid", BASE | {"stride": 2, "padding": "valid", "output_shape": [5, 9]},
               "output_shape"),
    ErrorInput("output-shape-unreachable-explicit", BASE | {"stride": 2, "padding": 1, "output_shape": [10, 10]},
               "output_shape"),
    ErrorInput("output-padding-too-large", BASE | {"stride": 2, "padding": 1, "output_padding": 2},
               "output_padding"),
    ErrorInput("output-padding-with-same", BASE | {"stride": 2, "padding": "same", "output_padding": 1},
               "output_padding"),
    ErrorInput("output-padding-and-shape", BASE | {"stride": 2, "padding": 1, "output_padding": 1,
                                                   "output_shape": [8, 10]}, "output_shape"),
    ErrorInput("input-channels-not-divisible", BASE | {"groups": 3, "out_channels": 3}, "groups"),
    ErrorInput("output-channels-not-divisible", BASE | {"groups": 2, "out_channels": 3}, "groups"),
    ErrorInput("crops-remove-everything", BASE | {"padding": [3, 3, 0, 0]}, "padding"),
)
