"""The numba conv2d kernel's Winograd path (``numba_winograd``): when the plan takes it, its results against the
float64 oracle under the tolerance model, its fallbacks to the direct path, and its reproducer.

Every call runs with Numba's whole thread team (as in test_numba_paths). Results are judged with the
tolerance model itself (``harness.compare.bound``), and each test also asserts the ratio of the worst error
to that bound stays well below 1 (Note [Winograd F(2x2, 3x3)] quotes the ratios measured): ``LIMIT``, the
float32 computation's error; float16/bfloat16 results are rounded once more, by up to ``u·|y|`` of a bound of
at least ``u·(|y| + B)``, so up to half of it on any path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_standalone_program

pytest.importorskip("numba")

from harness import compare  # noqa: E402
from harness.backends.numba_kernel import NumbaBackend  # noqa: E402
from harness.cases import load_file  # noqa: E402
from harness.data import round_to_dtype  # noqa: E402
from harness.kernels import threads  # noqa: E402
from harness.ops.conv2d import numba_kernel as conv_kernel  # noqa: E402
from harness.ops.conv2d import numba_plan as conv_plan  # noqa: E402
from harness.ops.conv2d import numba_winograd  # noqa: E402
from harness.ops.conv2d import oracle as conv_oracle  # noqa: E402
from harness.ops.conv2d import semantics as conv_semantics  # noqa: E402
from harness.runner import prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

LIMIT = {"float32": 0.25, "float16": 0.6, "bfloat16": 0.6}


@pytest.fixture(autouse=True)
def whole_team(monkeypatch):
    """Numba's own thread count for every call, whatever the machine's load; plans made afresh."""
    monkeypatch.setattr(threads, "_load", lambda: None)
    monkeypatch.setattr(threads, "_stalled", lambda wall, cpu: False)
    monkeypatch.setattr(threads, "_STALLS", {"left": 0})
    monkeypatch.setattr(conv_plan, "_PLANS", {})


@pytest.fixture
def small_calls(monkeypatch):
    """The Winograd path for calls of any number of tiles and 16 output channels (small shapes: quick tests of
    the edge cases; their own plan would take the direct path, faster there)."""
    monkeypatch.setattr(numba_winograd, "MIN_TILES", 1)
    monkeypatch.setattr(numba_winograd, "MIN_COUT", 16)


def resolved(params):
    p = conv_semantics.Params(**params)
    return p, conv_semantics.resolve(p)


def call(params, arrays, dtype):
    _, r = resolved(params)
    return conv_kernel.conv2d(arrays["x"], arrays["w"], arrays.get("b"), stride=r.stride, dilation=r.dilation,
                              groups=r.groups, pads=r.pads, out_hw=r.out_hw, layout=r.layout, dtype=dtype)


def paths():
    return [plan.path for plan in conv_plan._PLANS.values()]


def direct(monkeypatch, params, arrays, dtype):
    """The call on the path the plan takes without Winograd."""
    with monkeypatch.context() as m:
        m.setattr(conv_plan, "winograd_fits", lambda *args: False)
        m.setattr(conv_plan, "_PLANS", {})
        return call(params, arrays, dtype)


def bound_ratio(got, params, arrays, dtype):
    """Worst ``|got − y| / bound`` of the tolerance model (float32 accumulation for float16/bfloat16)."""
    _, r = resolved(params)
    want = conv_oracle.reference(params, arrays)
    magnitude = conv_oracle.reference(params, {k: np.abs(v) for k, v in arrays.items()})
    tol = compare.tolerance_for(dtype, r.accumulation_length,
                                accumulation="float32" if dtype in ("float16", "bfloat16") else None)
    limit = compare.bound(tol, compare.Reference(want, magnitude))
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want)
    # an exact output where the bound is 0 (B = 0) is within it; an inexact one is infinitely past it
    return float(np.max(np.divide(err, limit, out=np.where(err > 0, np.inf, 0.0), where=limit > 0), initial=0.0))


def make(params, dtype, seed, x_fill=None, w_fill=None):
    p, _ = resolved(params)
    rng = np.random.default_rng(seed)
    arrays = {name: rng.standard_normal(shape) for name, shape in conv_semantics.input_shapes(p).items()}
    if x_fill is not None:
        arrays["x"] = x_fill(rng, arrays["x"].shape)
    if w_fill is not None:
        arrays["w"] = w_fill(rng, arrays["w"].shape)
    return {k: round_to_dtype(v, dtype) for k, v in arrays.items()}


def conv(input, out_channels, padding=1, **more):
    return dict(input=input, out_channels=out_channels, kernel_size=3, padding=padding, **more)


@pytest.mark.parametrize("params, taken", [
    (conv([8, 64, 32, 32], 64), True),                                      # b1
    (conv([2, 32, 31, 32], 32, padding="same"), True),                      # the fewest channels and tiles
    (conv([1, 32, 31, 32], 32, padding="same"), False),                     # too few tiles
    (conv([2, 16, 32, 32], 64), False),                                     # too few input channels
    (conv([2, 64, 32, 32], 16), False),                                     # too few output channels
    (conv([1, 64, 32, 32], 64, stride=2), False),
    (conv([1, 64, 32, 32], 64, dilation=2), False),
    (conv([1, 64, 32, 32], 64, groups=2), False),
    (dict(input=[1, 64, 32, 32], out_channels=64, kernel_size=5, padding=2), False),
    (dict(input=[1, 64, 32, 32], out_channels=64, kernel_size=[3, 1], padding=1), False),
])
def test_the_plan_takes_the_winograd_path_for_3x3_stride_1_layers_with_enough_channels(params, taken):
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        conv_plan._PLANS.clear()
        call(params, make(params, dtype, 0), dtype)
        assert (paths() == [conv_plan.WINOGRAD]) == (taken and dtype != "float64"), (dtype, paths())


SHAPES = [   # odd and even sizes, tile rows shorter and longer than a vector, partial blocks, 1x1 outputs
    conv([1, 32, 5, 7], 17, padding=0),
    conv([2, 40, 9, 11], 33, padding=1),
    conv([1, 64, 8, 8], 20, padding=2),
    conv([2, 35, 7, 6], 24, padding=[0, 2, 1, 0]),
    conv([1, 48, 13, 70], 16, padding="same"),
    conv([3, 32, 3, 3], 18, padding=0),
    conv([1, 33, 4, 36], 50, padding=[2, 0, 0, 1]),
    conv([2, 64, 17, 17], 64, padding="same"),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("case", range(len(SHAPES)))
def test_winograd_results_are_within_the_tolerance_model(small_calls, case, dtype, layout):
    params = dict(SHAPES[case], bias=case % 2 == 1, layout=layout)
    if layout == "NHWC":
        n, c, h, w = params["input"]
        params["input"] = [n, h, w, c]
    arrays = make(params, dtype, case)
    got = call(params, arrays, dtype)
    assert paths() == [conv_plan.WINOGRAD]
    assert bound_ratio(got, params, arrays, dtype) < LIMIT[dtype]


HOSTILE = {   # fills of x and w (rng, shape) -> values; heavy tails in one of them may fall back (the spread guard)
    "offset": (lambda rng, s: 1000 + rng.standard_normal(s), None),
    "mixed-signs-offset": (lambda rng, s: rng.choice([-1000.0, 1000.0], s) + rng.standard_normal(s), None),
    "wide-8": (lambda rng, s: rng.standard_normal(s) * 2.0 ** rng.integers(-4, 5, s),
               lambda rng, s: rng.standard_normal(s) * 2.0 ** rng.integers(-4, 5, s)),
    "scaled-channels": (lambda rng, s: rng.standard_normal(s) * 2.0 ** rng.integers(-20, 21, (1, s[1], 1, 1)),
                        None),
    "positive": (lambda rng, s: rng.uniform(0, 1, s), lambda rng, s: rng.uniform(0, 1, s)),
    "weights-offset": (None, lambda rng, s: 3 + 0.01 * rng.standard_normal(s)),
    "wide-x": (lambda rng, s: rng.standard_normal(s) * 2.0 ** rng.integers(-20, 21, s), None),
    "wide-w": (None, lambda rng, s: rng.standard_normal(s) * 2.0 ** rng.integers(-20, 21, s)),
    "sparse-x": (lambda rng, s: rng.standard_normal(s) * (rng.uniform(size=s) < 0.05), None),
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_winograd_on_hostile_data_stays_within_the_tolerance_model(small_calls, kind, dtype):
    params = dict(conv([2, 64, 12, 20], 32), bias=True)
    arrays = make(params, dtype, 7, *HOSTILE[kind])
    got = call(params, arrays, dtype)
    assert paths() == [conv_plan.WINOGRAD]
    assert bound_ratio(got, params, arrays, dtype) < LIMIT[dtype]


def _set(*where):
    """A normal fill with ``value`` at ``index`` for each ``(index, value)`` of ``where``."""
    def fill(rng, shape):
        values = rng.standard_normal(shape)
        for index, value in where:
            values[index] = value
        return values
    return fill


FALLBACKS = {
    "x-inf": (_set(((0, 3, 4, 4), np.inf)), None),
    "x-nan": (_set(((1, 0, 0, 0), np.nan)), None),
    # one patch holding inf and -inf: Bᵀ d B makes NaN where the definition has ±inf
    "x-inf-and-minus-inf": (_set(((0, 1, 2, 2), np.inf), ((0, 1, 2, 4), -np.inf)), None),
    "w-inf": (None, _set(((5, 7, 1, 1), -np.inf))),
    "w-nan": (None, _set(((0, 0, 2, 2), np.nan))),
    "huge": (lambda rng, s: rng.standard_normal(s) * 2.0 ** 60, lambda rng, s: rng.standard_normal(s) * 2.0 ** 45),
    "x-tiny": (_set(((1, 5, 6, 7), 2.0 ** -110)), None),
    # heavy tails in both (Note: large x and w off each other's taps): errors up to 40x the bound measured
    "wide-range": (lambda rng, s: rng.standard_normal(s) * 2.0 ** rng.integers(-20, 21, s),
                   lambda rng, s: rng.standard_normal(s) * 2.0 ** rng.integers(-20, 21, s)),
    "cauchy": (lambda rng, s: rng.standard_cauchy(s), lambda rng, s: rng.standard_cauchy(s)),

    "w-tiny": (None, _set(((3, 3, 0, 2), -(2.0 ** -120)))),
    # |x| or |w| near float32's largest: V (4·|x|) or U (2.25·|w|) overflows though every product is small
    "x-near-max": (lambda rng, s: rng.choice([-3e38, 3e38], s), lambda rng, s: rng.standard_normal(s) * 2.0 ** -40),
    "w-near-max": (lambda rng, s: rng.standard_normal(s) * 2.0 ** -80, lambda rng, s: rng.choice([-2e38, 2e38], s)),
    # heavy tails in both, scaled near float32's largest (the guards' float32 sums of |x| could overflow)
    "wide-range-scaled": (lambda rng, s: rng.standard_normal(s) * 2.0 ** (104 + rng.integers(-20, 21, s)),
                          lambda rng, s: rng.standard_normal(s) * 2.0 ** (-55 + rng.integers(-20, 21, s))),
    # a tap zero in every input channel (PixelCNN's mask A): outputs whose real taps are all zero (B = 0, the
    # top-left corner with padding 1) take rounding errors from their window's other pixels
    "w-masked-taps": (None, lambda rng, s: rng.standard_normal(s) * np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]])),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("kind", sorted(FALLBACKS))
def test_data_the_transforms_must_not_see_falls_back_to_the_direct_path(small_calls, monkeypatch, kind):
    params = dict(conv([2, 32, 9, 10], 16), bias=True)
    arrays = make(params, "float32", 3, *FALLBACKS[kind])
    got = call(params, arrays, "float32")
    assert paths() == [conv_plan.WINOGRAD]
    np.testing.assert_array_equal(got, direct(monkeypatch, params, arrays, "float32"))
    assert bound_ratio(got, params, arrays, "float32") < LIMIT["float32"] or not np.all(np.isfinite(got))


@pytest.mark.parametrize("taps, cin, small", [
    ([[1, 1, 1], [1, 0, 0], [0, 0, 0]], 32, np.s_[:, :, 5]),      # PixelCNN's mask A: B = 0 at the corner
    ([[0, 0, 0], [1, 1, 1], [0, 0, 0]], 32, np.s_[:, :, 5]),      # a 1x3 kernel as 3x3, a row of 1e-4 x
    ([[1, 0, 1], [2, 0, 2], [1, 0, 1]], 64, np.s_[:, :, :, 1::2]),  # Sobel's pattern, every other column
])
def test_weights_with_taps_zero_in_every_channel_fall_back(small_calls, monkeypatch, taps, cin, small):
    """Where an output's taps that are nonzero meet small (or padding) pixels and its zero taps large ones, the
    transforms' roundings carry the large ones in: measured without the balance guard, a nonzero result where the
    bound is 0 (mask A, the top-left corner), 180-190x the bound (the others); the spread guard passed them."""
    params = conv([2, cin, 12, 12], 16)

    def x_fill(rng, shape):
        values = rng.standard_normal(shape)
        values[small] *= 1e-4
        return values
    arrays = make(params, "float32", 4, x_fill, lambda rng, s: rng.standard_normal(s) * np.array(taps, float))
    got = call(params, arrays, "float32")
    assert paths() == [conv_plan.WINOGRAD]
    np.testing.assert_array_equal(got, direct(monkeypatch, params, arrays, "float32"))
    assert bound_ratio(got, params, arrays, "float32") < LIMIT["float32"]


MASK_A = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]])


def _confined(images):
    """x uniform in channels 0-7 and zero in the others for ``images`` (normal in all channels for the rest),
    w normal with channels 0-7 under PixelCNN's mask A: the taps' sums over all channels are balanced, but where
    x lives only the mask's taps are nonzero."""
    def x_fill(rng, shape):
        values = rng.standard_normal(shape)
        values[images] = 0
        values[images, :8] = rng.uniform(-1, 1, values[images, :8].shape)
        return values

    def w_fill(rng, shape):
        values = rng.standard_normal(shape)
        values[:, :8] *= MASK_A
        return values
    return x_fill, w_fill


@pytest.mark.parametrize("images", [np.s_[:], np.s_[:1]], ids=["every-image", "one-image"])
def test_data_confined_to_channels_with_zero_taps_falls_back(small_calls, monkeypatch, images):
    """The weights' tap balance passes (channels 8-63 fill every tap), but x lives in channels 0-7, whose mask A
    meets only zeros and padding at each image's top-left output: ``B`` = 0 there, and Winograd's result was
    ~2e-7 (infinitely past the bound) before the taps were weighted by the channels' mean ``|x|``. With x confined
    in one image only, the whole call's channel means pass the weighted balance too: the check is per block."""
    params = conv([2, 64, 24, 24], 32)
    arrays = make(params, "float32", 15, *_confined(images))
    x, w = arrays["x"], arrays["w"]
    taps = np.abs(w).sum(axis=1).reshape(32, 9)
    assert (taps.min(axis=1) / taps.max(axis=1)).min() >= numba_winograd.BALANCE
    if images == np.s_[:1]:
        weighted = np.einsum("oct,c->ot", np.abs(w).reshape(32, 64, 9), np.abs(x).mean(axis=(0, 2, 3)))
        assert (weighted.min(axis=1) / weighted.max(axis=1)).min() >= numba_winograd.BALANCE
    got = call(params, arrays, "float32")
    assert paths() == [conv_plan.WINOGRAD]
    np.testing.assert_array_equal(got, direct(monkeypatch, params, arrays, "float32"))
    assert bound_ratio(got, params, arrays, "float32") < LIMIT["float32"]


ORDINARY = {
    "normal": lambda rng, s: rng.standard_normal(s),
    "uniform": lambda rng, s: rng.uniform(-1, 1, s),
    "relu": lambda rng, s: np.maximum(rng.standard_normal(s), 0),
    # channels' magnitudes spread by e^N(0, 1) (1/7 to 7): the weighted taps' balance measured >= 0.15
    "scaled-channels": lambda rng, s: rng.standard_normal(s) * np.exp(rng.standard_normal((1, s[1], 1, 1))),
    "half-the-channels-zero": lambda rng, s: rng.standard_normal(s) * (np.arange(s[1]) % 2).reshape(1, -1, 1, 1),
}


@pytest.mark.parametrize("cin", [32, 64])
@pytest.mark.parametrize("kind", sorted(ORDINARY))
def test_ordinary_data_keeps_the_winograd_result(small_calls, monkeypatch, kind, cin):
    """None of the guards (the weighted tap balance included) sends ordinary data to the direct path: the result
    is Winograd's (other bits than the direct path's), within the bound."""
    params = conv([2, cin, 24, 24], 32)
    weights = ORDINARY["uniform" if kind == "normal" else "normal"]
    arrays = make(params, "float32", 16, ORDINARY[kind], weights)
    got = call(params, arrays, "float32")
    assert paths() == [conv_plan.WINOGRAD]
    assert not np.array_equal(got, direct(monkeypatch, params, arrays, "float32"))
    assert bound_ratio(got, params, arrays, "float32") < LIMIT["float32"]


def test_the_weighted_tap_balance_skips_only_blocks_it_bounds():
    """``_channels_balanced`` computes a block's weighted balance only where the bound from the channels'
    largest means leaves it open: its answer is that of computing every block's."""
    rng = np.random.default_rng(17)
    cout, cin, floor = 16, 32, numba_winograd.BALANCE
    answers, settled = set(), 0
    for trial in range(40):
        w = (rng.standard_normal((cout, cin, 3, 3)) * rng.choice([MASK_A, np.ones((3, 3))], cin)).astype(np.float32)
        u = np.empty(numba_winograd.u_size(cout, cin), np.float32)
        aw = np.empty(numba_winograd.aw_size(cout, cin), np.float32)
        numba_winograd.transform_weights(w, u, aw)
        cm = rng.uniform(rng.uniform(0, 1), 1, (6, cin)) * (rng.uniform(size=(6, cin)) < rng.choice([0.1, 0.9, 1]))
        cm = cm.astype(np.float32)
        every = all(numba_winograd._tap_balance(aw, row, cout, cin, 0.0) >= floor for row in cm)
        assert numba_winograd._channels_balanced(cm, aw, cout, cin, floor) == every, trial
        answers.add(every)
        top = cm.max(axis=0)
        gamma = np.min(cm / np.where(top > 0, top, 1) + (top == 0), axis=1)
        settled += np.sum(gamma * numba_winograd._tap_balance(aw, top, cout, cin, floor) >= floor)
    assert answers == {True, False} and 0 < settled < 40 * 6


def test_ordinary_data_gives_a_result_other_than_the_direct_paths(small_calls, monkeypatch):
    """The fallback test above can tell the paths apart: without a trigger the bits differ."""
    params = dict(conv([2, 32, 9, 10], 16), bias=True)
    arrays = make(params, "float32", 3)
    assert not np.array_equal(call(params, arrays, "float32"), direct(monkeypatch, params, arrays, "float32"))


def test_the_fallback_thresholds():
    w = np.full((16, 32, 3, 3), 2.0 ** 50)
    w[0, 0, 0, 0] = numba_winograd.SMALLEST
    u = np.empty(numba_winograd.u_size(16, 32), np.float32)
    aw = np.empty(numba_winograd.aw_size(16, 32), np.float32)
    wstats = numba_winograd.transform_weights(w.astype(np.float32), u, aw)
    assert np.array_equal(aw[:16 * 32 * 9].reshape(16, 9, 32), np.abs(w).astype(np.float32).reshape(16, 32, 9)
                          .transpose(0, 2, 1))
    assert wstats[:2] == (2.0 ** 50, numba_winograd.SMALLEST) and wstats[2] == pytest.approx(2.0 ** 50, rel=1e-3)
    assert wstats[3] == pytest.approx(31 / 32, rel=1e-6)                             # channel 0's tap (0, 0)
    safe = numba_winograd.winograd_safe
    assert safe((2.0 ** 50, numba_winograd.SMALLEST, True, True), wstats)
    assert not safe((2.0 ** 50, numba_winograd.SMALLEST, True, True), wstats[:3] + (numba_winograd.BALANCE / 2,))
    assert not safe((2.0 ** 125, 1.0, True, True), (2.0 ** -40, 2.0 ** -40, 2.0 ** -40, 1.0))  # V would overflow
    assert not safe((1.0, 1.0, True, True), (2.0 ** 126, 1.0, 2.0 ** 126, 1.0))            # U would overflow
    assert not safe((2.0 ** 50, numba_winograd.SMALLEST, False, True), wstats)             # a block past the spread
    assert not safe((2.0 ** 50, numba_winograd.SMALLEST, True, False), wstats)             # a block's taps by x
    assert not safe((2.0 ** 51, 1.0, True, True), wstats)                                  # a product past 2^100
    assert not safe((1.0, numba_winograd.SMALLEST / 2, True, True), wstats)                # tiny
    assert not safe((np.inf, 1.0, True, True), wstats)
    assert not safe((np.nan, 1.0, True, True), wstats)
    assert numba_winograd.x_limit((4.0, 1.0, 2.0, 1.0), 32) == numba_winograd.SPREAD * 32 / 2
    assert numba_winograd.x_limit((0.0, np.inf, 0.0, 1.0), 32) == np.inf             # zero weights: any x


def test_the_spread_guard_is_per_block(small_calls, monkeypatch):
    """A corner of heavy-tailed data in one image falls back, though the other image's large values make the
    whole tensor's ``max/mean`` pass the guard."""
    params = conv([2, 32, 40, 40], 32)
    arrays = make(params, "float32", 5)
    x, w = arrays["x"], arrays["w"]
    x[0] *= 2.0 ** 20
    x[1, :, 30:, 30:] *= 2.0 ** np.random.default_rng(1).integers(-20, 21, x[1, :, 30:, 30:].shape)
    whole = np.abs(x).max() * np.abs(w).max() / (np.abs(x).mean() * np.abs(w).mean())
    assert whole <= numba_winograd.SPREAD * 32
    got = call(params, arrays, "float32")
    assert paths() == [conv_plan.WINOGRAD]
    np.testing.assert_array_equal(got, direct(monkeypatch, params, arrays, "float32"))


def test_an_empty_batch_is_empty(small_calls):
    """No tiles: the plan takes the direct path, which returns the empty output."""
    params = conv([0, 32, 6, 6], 16)
    got = call(params, make(params, "float32", 0), "float32")
    assert paths() != [conv_plan.WINOGRAD]
    assert got.shape == (0, 16, 6, 6)


def test_the_reproducer_of_a_winograd_call_runs_standalone(tmp_path):
    """conv2d b1 takes the Winograd path; its numba program, rendered as a reproducer (kernel sources embedded,
    conform unimportable), runs in a bare interpreter and gives the kernel's result."""
    case = load_file(ROOT / "benchmarks" / "conv2d.yaml")[0]
    c, _ = prepare(case)
    r = c.resolved
    want = conv_kernel.conv2d(c.arrays["x"], c.arrays["w"], None, stride=tuple(r["stride"]),
                              dilation=tuple(r["dilation"]), groups=r["groups"], pads=tuple(r["pads"]),
                              out_hw=tuple(r["out_hw"]), dtype=c.dtype)
    assert paths() == [conv_plan.WINOGRAD]
    got = run_standalone_program(tmp_path, NumbaBackend().conv2d(c), c.arrays)
    np.testing.assert_array_equal(got, want)
