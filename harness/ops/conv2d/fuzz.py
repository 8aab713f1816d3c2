"""Random valid conv2d cases (``conform fuzz N --op conv2d``).

Every generated case is valid under the canonical semantics by construction
(channels divisible by groups, the effective kernel within the padded input);
the core (harness/fuzz.py) numbers, seeds and writes them.
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
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    form = rng.choice(["same", "valid", "explicit", "explicit"])
    pads = [rng.randint(0, 2) for _ in range(4)] if form == "explicit" else [0, 0, 0, 0]
    # an input the effective kernel fits in (padding included): every form is valid
    h, w = (rng.randint(max(1, e - pads[2 * a] - pads[2 * a + 1]), max(1, e - pads[2 * a] - pads[2 * a + 1]) + 8)
            for a, e in enumerate(eff))
    case = {"id": case_id, "input": [rng.randint(1, 3), c_in, h, w], "out_channels": c_out,
            "kernel_size": kernel, "stride": stride, "dilation": dilation, "groups": groups,
            "padding": pads if form == "explicit" else form,
            "bias": rng.random() < 0.5, "dtype": rng.choice(list(dtypes)),
            "layout": rng.choice(["NCHW", "NHWC"]),
            "data": {"x": rng.choice(["normal", "uniform", "arange", "impulse"]),
                     "w": rng.choice(["normal", "uniform", "arange"]), "seed": rng.randint(0, 10**6)}}
    if case["layout"] == "NHWC":
        n, c, hh, ww = case["input"]
        case["input"] = [n, hh, ww, c]
    return case
