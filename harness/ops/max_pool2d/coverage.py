"""Coverage dimensions of max_pool2d, the pairwise generator's input and random valid cases (``conform fuzz``).

The levels (stride, kernel, padding form, ceil_mode, dilation, layout,
dtype, data fill) and the concrete shapes are the pooling operators' shared
ones (``harness.ops.pooling.parts``); which rows are valid is decided by
this operator's semantics, which a backend can run by its adapter's own gap
function (``harness.ops.pooling.frameworks``).
"""

from __future__ import annotations

import random

from harness.ops.max_pool2d import semantics
from harness.ops.pooling import parts

COVERAGE = parts.coverage_spec(semantics.NAME, lambda: (semantics.Params, semantics.resolve),
                               "dilation with padding and ceil_mode")


def random_case(rng: random.Random, case_id: str, dtypes) -> dict:
    """One random case the semantics accepts."""
    return parts.random_case(semantics.NAME, rng, case_id, dtypes, semantics.resolve, semantics.Params)
