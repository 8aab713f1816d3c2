"""Random valid conv2d_transpose cases (``conform fuzz N --op conv2d_transpose``).

Every generated case is valid under the canonical semantics by construction
(channels divisible by groups, output_padding below max(stride, dilation),
output_shape reachable); the core (harness/fuzz.py) numbers, seeds and
writes them.
"""

from __future__ import annotations

import random


def random_case(rng: random.Random, case_id: str, dtypes) -> dict:
    groups = rng.choice([1, 1, 1, 2, 3])
    c_in = groups * rng.randint(1, 4)
    c_out = groups * rng.randint(1, 4)
    kernel = [rng.randint(1, 5), rng.randint(1, 5)]
    stride = [rng.randint(1, 3), rng.randint(1, 3)]
    dilation = [rng.choice([1, 1, 2]), rng.choice([1, 1, 2])]
    h, w = rng.randint(1, 9), rng.randint(1, 9)
    case = {"id": case_id, "input": [rng.randint(1, 3), c_in, h, w], "out_channels": c_out,
            "kernel_size": kernel, "stride": stride, "dilation": dilation, "groups": groups,
            "bias": rng.random() < 0.5, "dtype": rng.choice(list(dtypes)),
            "layout": rng.choice(["NCHW", "NHWC"]),
            "data": {"x": rng.choice(["normal", "uniform", "arange", "impulse"]),
                     "w": rng.choice(["normal", "uniform", "arange"]), "seed": rng.randint(0, 10**6)}}
    form = rng.choice(["same", "valid", "explicit", "explicit"])
    full = [(size - 1) * s + d * (k - 1) + 1 for size, s, d, k in zip((h, w), stride, dilation, kernel)]
    if form == "explicit":
        pads = []
        for f in full:
            a = rng.randint(0, max(0, (f - 1) // 2))
            b = rng.randint(0, max(0, f - 1 - a))
            pads += [a, b]
        case["padding"] = pads
        case["output_padding"] = [rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation)]
    else:
        case["padding"] = form
        if rng.random() < 0.3:   # an explicit, reachable output_shape
            if form == "same":
                case["output_shape"] = [rng.randint((size - 1) * s + 1, size * s) for size, s in zip((h, w), stride)]
            else:
                case["output_shape"] = [f + rng.randint(0, s - 1) for f, s in zip(full, stride)]
    if case["layout"] == "NHWC":
        n, c, hh, ww = case["input"]
        case["input"] = [n, hh, ww, c]
    return case
