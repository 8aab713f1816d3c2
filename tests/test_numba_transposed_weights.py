"""The numba conv2d_transpose kernel's weight repacking (``numba_weights.pack_transposed_weights``): its blocks, element by
element, against the layout its docstring gives, and its finiteness check (0.0, or NaN for any inf/NaN
weight, wherever it sits: in a block transposed in registers or in the one-by-one tail)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from harness.ops.conv2d_transpose.numba_weights import pack_transposed_weights  # noqa: E402


def _want(w, groups, lanes, dtype, nb_max):
    cin, cog, kh, kw = w.shape
    cig, ntap = cin // groups, kh * kw
    nrow = ntap * cig
    want = np.zeros((groups, nrow * (-(-cog // lanes) * lanes)), dtype)
    for g in range(groups):
        ob0 = 0
        while ob0 < cog:
            ob = min(nb_max, -(-(cog - ob0) // lanes)) * lanes
            for t in range(ntap):
                for ci in range(cig):
                    for o in range(min(ob, cog - ob0)):
                        want[g, ob0 * nrow + (t * cig + ci) * ob + o] = w[g * cig + ci, ob0 + o, t // kw, t % kw]
            ob0 += ob
    return want


@pytest.mark.parametrize("groups, cig, cog, k, dtype", [
    (1, 6, 128, (3, 3), np.float32),     # whole vectors, 2 blocks of 4; 9 of 16 taps per transposed block
    (2, 3, 40, (5, 5), np.float32),      # 25 taps: two column blocks; a partial vector
    (3, 2, 20, (2, 3), np.float32),
    (1, 4, 37, (3, 1), np.float64),      # 8 lanes; a partial vector
    (1, 3, 5, (1, 1), np.float32),       # fewer channels than a vector: all one by one
])
@pytest.mark.parametrize("nb_max", [4, 3, 2])   # the kernel's _NB_ROWS: 3 (128 channels: blocks of 3, 3, 2 vectors)
def test_blocks_follow_the_documented_layout(groups, cig, cog, k, dtype, nb_max):
    lanes = 16 if dtype == np.float32 else 8
    w = np.random.default_rng(3).standard_normal((groups * cig, cog, *k)).astype(dtype)
    want = _want(w, groups, lanes, dtype, nb_max)
    wp = np.full_like(want, np.nan)
    assert pack_transposed_weights(w, wp, lanes, nb_max) == 0.0
    np.testing.assert_array_equal(wp, want)


@pytest.mark.parametrize("where", ["first", "middle", "last"])   # "last": past the transposed blocks' reach
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_non_finite_weight_anywhere_makes_the_check_nan(where, bad):
    w = np.random.default_rng(4).standard_normal((4, 32, 3, 3)).astype(np.float32)
    w.flat[{"first": 0, "middle": w.size // 2 + 5, "last": w.size - 1}[where]] = bad
    assert np.isnan(pack_transposed_weights(w, np.empty((1, w.size), np.float32), 16))


def test_huge_finite_weights_pass_the_check():
    """The check sums weight · 0, not the weights: no overflow sends finite weights to the exact path."""
    w = np.full((4, 32, 3, 3), np.finfo(np.float32).max, np.float32)
    assert pack_transposed_weights(w, np.empty((1, w.size), np.float32), 16) == 0.0
