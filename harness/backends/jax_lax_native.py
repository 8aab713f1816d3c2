"""``jax.lax``'s native vocabulary and the inverse of its adapter's mapping (Note [Native vocabularies] in
``harness/native.py``), as JAX 0.10.2 defines it (``jax/_src/lax/convolution.py``: ``conv_transpose``,
``_conv_transpose_padding``, ``conv_general_dilated``; ``windowed_reductions.py``: ``reduce_window``;
``lax.padtype_to_pads``).

Note [JAX's native calls]
-------------------------
Arrays are given by their shape (``rhs``); sizes are sequences (JAX takes no bare int); ``padding`` is a
string or one ``(low, high)`` pair per spatial axis (``reduce_window``: per dimension); ``dimension_numbers``
is ``(lhs_spec, rhs_spec, out_spec)`` with ``lhs_spec`` ``'NCHW'``/``'NHWC'`` (the canonical layout),
``out_spec`` the same (the canonical output keeps the input's layout), ``rhs_spec`` ``'OIHW'`` (what the
adapter poses) or ``'HWIO'`` (``conv_transpose``'s default). ``precision`` does not change the function
(accepted, dropped); ``preferred_element_type`` other than None, ``batch_group_count`` other than 1 and
``base_dilation`` other than 1 have no canonical form. The adapter poses ``'OIHW'``, ``transpose_kernel=True``
and ``conv_transpose`` unless grouped: a claim stating another spelling of the same function is refused by
the claims loader (``posed_differently``), naming what the adapter passes instead.

``conv2d_transpose``: ``conv_transpose(lhs, rhs, strides, padding, rhs_dilation, dimension_numbers,
transpose_kernel=True)``. ``rhs``'s O axis is the input's features and I the output's (the forward conv's
kernel; JAX flips it and swaps O/I). ``transpose_kernel=False`` (JAX's default) convolves with ``rhs``
unflipped: the same function only for a flipped, O/I-swapped weight, a conversion a claim's operands do
not carry, so it is refused (the adapter poses True). Padding, per axis with ``K`` the dilated kernel:

* ``'SAME'``/``'VALID'``, spelled exactly so, are the forward conv's padding (``_conv_transpose_padding``):
  ``'SAME'`` is the canonical ``same`` (``H·s`` rows, ``(K − s)//2`` cropped on top, 0 for ``K ≤ s``);
  ``'VALID'`` gives ``(H−1)·s + max(K, s)`` rows uncropped: canonical ``valid``, and for ``K < s`` Keras'
  ``valid`` with ``output_padding = s − K`` (``size_rule: keras``; JAX documents Keras' conventions).
* pairs are the zero padding of the stride-dilated input (``use_consistent_padding=False``, the default):
  ``(lo, hi)`` crops ``pt = K−1−lo`` on top (a negative ``lo`` crops past ``K−1``) and keeps
  ``hi − (K−1)`` zero rows past the full output (``output_padding``) or crops ``K−1−hi``. An ``lo > K−1``
  (zero rows above the output) or ``hi − (K−1) ≥ max(s, d)`` (more trailing zero rows than any canonical
  output padding) has no canonical form. ``use_consistent_padding=True`` reads pairs as the forward conv's
  padding, i.e. the crops: ``(K−1−lo, K−1−hi)`` of the above.
* other strings (lower case, ``'SAME_LOWER'``) are not ``conv_transpose``'s: JAX hands them to
  ``conv_general_dilated`` with ``lhs_dilation=strides``, which refuses a string there unless every
  stride is 1; then they are the forward padding of a stride-1 conv (``'same'`` crops the odd row on top).

A grouped transposed convolution (``conv_transpose`` has no groups) is ``conv_general_dilated`` with
``lhs_dilation`` (the stride), ``window_strides`` 1, the same pairs and ``feature_group_count``, ``rhs``
being the weight flipped and regrouped to ``(C_out, C_in/groups, kh, kw)`` as the adapter builds it.
Read under ``conv2d_transpose`` when a parameter only ``conv_general_dilated`` has is given; a
``window_strides`` > 1 there strides over the dilated input, which is neither operator (refused).

``conv2d``: ``conv_general_dilated``; strings in any case (``padtype_to_pads`` upper-cases them:
``'SAME'`` canonical ``same``, ``'SAME_LOWER'`` ``same_lower``); negative pairs (JAX crops the input) and
``lhs_dilation`` > 1 (the transposed form: claim it as ``conv2d_transpose``) are refused.

``max_pool2d``: ``reduce_window(operand, init_value=-inf, computation=lax.max, window_dimensions,
window_strides, padding, base_dilation, window_dilation)`` with 4-entry tuples. It has no layout: the
spatial axes are the two not N and C, read from the tuples (window 1, stride 1, dilation 1 and no padding
on N and C): ``(1, 1, kh, kw)`` is NCHW, ``(1, kh, kw, 1)`` NHWC; when both readings fit (only axis 2
pools) it reads as NCHW (the same function of the array). ``init_value`` is the padding's value: only −inf
is max pooling. A string padding with ``window_strides`` omitted makes JAX fail (it passes no strides to
``padtype_to_pads``): refused.

``avg_pool2d``: JAX has no average pooling (no primitive, no lax function); the adapter computes a
``reduce_window`` sum over a ``reduce_window`` count, which is ``flax.linen.avg_pool`` (``pooling.py``), the
form JAX code writes. So its vocabulary is flax's: ``avg_pool(inputs, window_shape, strides=None,
padding='VALID', count_include_pad=True)``, channels-last (flax pools the axes between batch and
features), ``strides`` defaulting to 1 (not to the window), ``count_include_pad`` dividing by the window
size (True) or by the count of input elements. A claim on this side states flax's call, computed by the
same lax calls without flax. ``to_native`` raises ``Unsupported`` for what flax cannot say (``conform
translate`` then tries the other layout): an NCHW program, and a ``ceil_mode`` window past the padding
counted (flax divides by the whole window).
"""

from __future__ import annotations

from harness.backends.base import NativeParamError, Unsupported
from harness.backends.program import Call as Expr
from harness.backends.program import Method, Ref
from harness.native import (REQUIRED, Arg, Inverse, anything, boolean, calls, channels, expect, find_call, has_call,
                            integer, ints, only, plain, shape_of)
from harness.ops.fields import split_total

LAYOUTS = ("NCHW", "NHWC")
KERNEL_SPECS = ("OIHW", "HWIO")
PAD_STRINGS = ("SAME", "SAME_LOWER", "VALID")
SEQ2, SEQ4 = ints(2, 1, scalar=False), ints(4, 1, scalar=False)
IGNORED = Arg(anything, None, ignored=True)
NO_PREFERRED = Arg(only(None, "the accumulation and output dtype are the claim's dtype"), None)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def dimension_numbers(name, value):
    """``(lhs_spec, rhs_spec, out_spec)``, in the forms the canonical call has (module docstring)."""
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        raise NativeParamError(name, f"expected (lhs_spec, rhs_spec, out_spec), 3 strings such as "
                                     f"('NCHW', 'OIHW', 'NCHW'), got {value!r}")
    lhs, rhs, out = value
    expect(name, lhs in LAYOUTS, f"lhs_spec {lhs!r}: the canonical layouts are 'NCHW' and 'NHWC'")
    expect(name, rhs in KERNEL_SPECS, f"rhs_spec {rhs!r}: conform reads the kernel as 'OIHW' or 'HWIO'")
    expect(name, out == lhs, f"out_spec {out!r} is not lhs_spec {lhs!r}: the canonical output keeps the "
                             "input's layout")
    return list(value)


def pairs(count: int):
    """``count`` (low, high) pairs of ints of any sign, as lists."""
    def check(name, value):
        if not (isinstance(value, (list, tuple)) and len(value) == count and all(
                isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_int(v) for v in p) for p in value)):
            raise NativeParamError(name, f"expected 'SAME', 'SAME_LOWER', 'VALID' or {count} (low, high) pairs of "
                                         f"ints, got {value!r}")
        return [list(p) for p in value]
    return check


def padding(count: int, fold_case: bool = True):
    """A padding string (upper-cased where JAX upper-cases it: ``padtype_to_pads``; kept as spelled for
    ``conv_transpose``, whose own strings are exactly 'SAME' and 'VALID') or ``count`` pairs."""
    def check(name, value):
        if isinstance(value, str):
            expect(name, value.upper() in PAD_STRINGS, f"expected 'SAME', 'SAME_LOWER', 'VALID' or {count} "
                                                       f"(low, high) pairs, got {value!r}")
            return value.upper() if fold_case else value
        return pairs(count)(name, value)
    return check


def _ones(name, value):
    values = SEQ4(name, value)
    expect(name, values == [1, 1, 1, 1], f"{values} dilates the operand (holes between its elements): no "
                                         "canonical pooling has it")
    return values


def forward_pads(size: int, k_eff: int, stride: int, mode: str) -> tuple[int, int]:
    """``lax.padtype_to_pads`` on one axis."""
    if mode == "VALID":
        return 0, 0
    total = max(0, (-(-size // stride) - 1) * stride + k_eff - size)
    return split_total(total, "same_lower" if mode == "SAME_LOWER" else "same")


def _kernel(rhs: list, spec: str) -> tuple[int, int, int, int]:
    """rhs's (O, I, H, W) sizes whichever its spec."""
    return tuple(rhs[spec.index(axis)] for axis in "OIHW")


def _spatial(input_shape: list, layout: str) -> list[int]:
    return input_shape[2:] if layout == "NCHW" else input_shape[1:3]


def _features(name: str, have: int, input_shape: list, layout: str, what: str) -> None:
    c = channels(input_shape, layout)
    expect(name, have == c, f"{what} = {have} must equal the input's features {c} ({layout})")


def _k_eff(kernel, dilation) -> list[int]:
    return [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]


def _nonnegative(padding) -> list[int]:
    """Pairs as canonical [top, bottom, left, right]; JAX's negative padding crops the input instead."""
    flat = [v for p in padding for v in p]
    expect("padding", min(flat) >= 0, f"{padding}: a negative pad crops the input; the canonical padding is ≥ 0")
    return flat


# ---------------------------------------------------------------- conv2d_transpose

def dilated_input_pads(pads: list, k_eff: list, strides: list, dilation: list) -> dict:
    """Per axis, the (lo, hi) zero padding of the stride-dilated input as canonical crops and output_padding
    (Note [JAX's native calls])."""
    crops, extra = [], []
    for (lo, hi), k, s, d in zip(pads, k_eff, strides, dilation):
        expect("padding", lo <= k - 1, f"{pads}: a low pad {lo} > K−1 = {k - 1} puts zero rows above the output, "
                                       "which the canonical crops cannot say")
        op = max(0, hi - (k - 1))
        expect("padding", op < max(s, d), f"{pads}: a high pad {hi} keeps {op} zero rows past the full output; "
                                          f"the canonical output_padding is < max(stride, dilation) = {max(s, d)}")
        crops += [k - 1 - lo, max(0, k - 1 - hi)]
        extra.append(op)
    return dict(padding=crops, output_padding=extra)


def _transpose_padding(n: dict, sizes: list, k_eff: list) -> dict:
    pad, strides, dilation = n["padding"], n["strides"], n["rhs_dilation"]
    if pad == "SAME":
        return dict(padding="same")
    if pad == "VALID":
        op = [max(s - k, 0) for s, k in zip(strides, k_eff)]
        return dict(padding="valid", **(dict(size_rule="keras", output_padding=op) if any(op) else {}))
    if isinstance(pad, str):
        expect("padding", not n["use_consistent_padding"], f"{pad!r} with use_consistent_padding=True: "
                                                           "conv_transpose takes 'SAME' and 'VALID' only (it raises)")
        expect("padding", strides == [1, 1], f"{pad!r} is not 'SAME' or 'VALID': conv_transpose passes it to "
                                             f"conv_general_dilated, which refuses a string with strides {strides}")
        pad = [forward_pads(size, k, 1, pad.upper()) for size, k in zip(sizes, k_eff)]
    elif n["use_consistent_padding"]:
        pad = [(k - 1 - lo, k - 1 - hi) for (lo, hi), k in zip(pad, k_eff)]
    return dilated_input_pads(pad, k_eff, strides, dilation)


def _transpose_canonical(n: dict, input_shape: list) -> dict:
    layout, spec = n["dimension_numbers"][:2]
    expect("transpose_kernel", n["transpose_kernel"], "False (JAX's default) convolves the stride-dilated input "
           "with rhs unflipped: the same function only for the canonical weight flipped and O/I-swapped, a "
           "conversion a claim's operands do not carry; state transpose_kernel: true")
    c_in, c_out, kh, kw = _kernel(n["rhs"], spec)
    _features("rhs", c_in, input_shape, layout, f"rhs's O axis ({spec}; transpose_kernel swaps O and I)")
    k_eff = _k_eff((kh, kw), n["rhs_dilation"])
    fields = dict(out_channels=c_out, kernel_size=[kh, kw], stride=n["strides"], output_padding=[0, 0],
                  dilation=n["rhs_dilation"], groups=1, bias=False, output_shape=None, layout=layout)
    fields.update(_transpose_padding(n, _spatial(input_shape, layout), k_eff))
    return fields


def _dilated_canonical(n: dict, input_shape: list) -> dict:
    """conv_general_dilated with lhs_dilation, read as the (grouped) transposed convolution."""
    layout, spec = n["dimension_numbers"][:2]
    c_out, cig, kh, kw = _kernel(n["rhs"], spec)
    g, strides = n["feature_group_count"], n["lhs_dilation"]
    _features("rhs", cig * g, input_shape, layout, f"rhs's I axis ({spec}) · feature_group_count")
    expect("window_strides", n["window_strides"] == [1, 1], f"{n['window_strides']} with lhs_dilation {strides}: a "
           "strided window over the dilated input is neither a transposed nor a plain convolution")
    k_eff = _k_eff((kh, kw), n["rhs_dilation"])
    pad = n["padding"]
    if isinstance(pad, str):
        expect("padding", strides == [1, 1], f"{pad!r} with lhs_dilation {strides}: conv_general_dilated refuses "
                                             "a string padding for a transposed convolution")
        pad = [forward_pads(size, k, 1, pad) for size, k in zip(_spatial(input_shape, layout), k_eff)]
    fields = dict(out_channels=c_out, kernel_size=[kh, kw], stride=strides, dilation=n["rhs_dilation"], groups=g,
                  bias=False, output_shape=None, layout=layout)
    fields.update(dilated_input_pads(pad, k_eff, strides, n["rhs_dilation"]))
    return fields


def _complete_conv(default_dn: list):
    def complete(native: dict) -> dict:
        for name in ("rhs_dilation", "lhs_dilation"):
            if name in native and native[name] is None:
                native[name] = [1, 1]        # JAX's None: no dilation
        if native["dimension_numbers"] is None:
            native["dimension_numbers"] = list(default_dn)
        return native
    return complete


def _transpose_read(program, shapes: dict) -> dict:
    if has_call(program, "jax.lax.conv_transpose"):
        kw = find_call(program, "jax.lax.conv_transpose").kwargs
        return dict(rhs=shape_of(shapes, "w"), **{k: plain(v) for k, v in kw.items()})
    kw = find_call(program, "jax.lax.conv_general_dilated").kwargs   # grouped: the kernel flipped and regrouped
    _, cog, kh, kwidth = shape_of(shapes, "w")
    g = kw["feature_group_count"]
    return dict(rhs=[g * cog, shape_of(shapes, "x")[1] // g, kh, kwidth], **{k: plain(v) for k, v in kw.items()})


def _general_schema() -> dict:
    return {"rhs": Arg(SEQ4, REQUIRED), "window_strides": Arg(SEQ2, REQUIRED), "padding": Arg(padding(2), REQUIRED),
            "lhs_dilation": Arg(SEQ2, [1, 1]), "rhs_dilation": Arg(SEQ2, [1, 1]),
            "dimension_numbers": Arg(dimension_numbers, None), "feature_group_count": Arg(integer(1), 1),
            "batch_group_count": Arg(only(1, "groups over the batch have no canonical form"), 1),
            "precision": IGNORED, "preferred_element_type": NO_PREFERRED, "out_sharding": IGNORED}


_DILATED = Inverse("jax.lax.conv_general_dilated", _general_schema(), _dilated_canonical, _transpose_read,
                   _complete_conv(["NCHW", "OIHW", "NCHW"]))

CONV_TRANSPOSE = Inverse(
    "jax.lax.conv_transpose",
    {"rhs": Arg(SEQ4, REQUIRED), "strides": Arg(SEQ2, REQUIRED), "padding": Arg(padding(2, fold_case=False), REQUIRED),
     "rhs_dilation": Arg(SEQ2, [1, 1]), "dimension_numbers": Arg(dimension_numbers, None),
     "transpose_kernel": Arg(boolean, False), "precision": IGNORED, "preferred_element_type": NO_PREFERRED,
     "use_consistent_padding": Arg(boolean, False)},
    _transpose_canonical, _transpose_read, _complete_conv(["NHWC", "HWIO", "NHWC"]),
    alternative=_DILATED, only_alternative=("window_strides", "lhs_dilation", "feature_group_count",
                                            "batch_group_count", "out_sharding"))


# ---------------------------------------------------------------- conv2d

def _conv_canonical(n: dict, input_shape: list) -> dict:
    layout, spec = n["dimension_numbers"][:2]
    c_out, cig, kh, kw = _kernel(n["rhs"], spec)
    g = n["feature_group_count"]
    _features("rhs", cig * g, input_shape, layout, f"rhs's I axis ({spec}) · feature_group_count")
    expect("lhs_dilation", n["lhs_dilation"] == [1, 1], f"{n['lhs_dilation']} dilates the input: that is a "
                                                        "transposed convolution (claim it as conv2d_transpose)")
    pad = n["padding"]
    return dict(out_channels=c_out, kernel_size=[kh, kw], stride=n["window_strides"],
                padding=pad.lower() if isinstance(pad, str) else _nonnegative(pad), dilation=n["rhs_dilation"],
                groups=g, bias=False, layout=layout)


def _conv_read(program, shapes: dict) -> dict:
    kw = find_call(program, "jax.lax.conv_general_dilated").kwargs
    return dict(rhs=shape_of(shapes, "w"), **{k: plain(v) for k, v in kw.items()})


CONV2D = Inverse("jax.lax.conv_general_dilated", _general_schema(), _conv_canonical, _conv_read,
                 _complete_conv(["NCHW", "OIHW", "NCHW"]))


# ---------------------------------------------------------------- max_pool2d

def init_value(name, value):
    if isinstance(value, str) and value.strip().lower() in ("-inf", "-infinity"):
        value = float("-inf")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == float("-inf"):
        return float("-inf")
    raise NativeParamError(name, f"{value!r}: max pooling's init_value is -inf (what padding holds); another "
                                 "value bounds every window from below, another function")


def computation(name, value):
    if value in ("max", "lax.max", "jax.lax.max"):
        return "jax.lax.max"
    hint = (" (a windowed sum; average pooling is flax.linen.avg_pool's parameters under avg_pool2d)"
            if isinstance(value, str) and value.rsplit(".", 1)[-1] == "add" else "")
    raise NativeParamError(name, f"{value!r}{hint}: max pooling is reduce_window with jax.lax.max")


def _complete_window(native: dict) -> dict:
    if native["window_strides"] is None:
        expect("window_strides", not isinstance(native["padding"], str), f"omitted with padding "
               f"{native['padding']!r}: reduce_window passes no strides to padtype_to_pads and fails; give them")
        native["window_strides"] = [1, 1, 1, 1]
    for name in ("window_dilation", "base_dilation"):
        if native[name] is None:
            native[name] = [1, 1, 1, 1]
    return native


_WINDOW = ("window_dimensions", "window_strides", "window_dilation", "padding")


def pool_layout(n: dict) -> str:
    """Which reduce_window axes are N and C (module docstring): 'NCHW' where both readings fit."""
    def trivial(name, axis) -> bool:
        value = n[name]
        return isinstance(value, str) or value[axis] == ([0, 0] if name == "padding" else 1)
    readings = {layout: [(name, axis) for name in _WINDOW for axis in axes if not trivial(name, axis)]
                for layout, axes in (("NCHW", (0, 1)), ("NHWC", (0, 3)))}
    for layout, offending in readings.items():
        if not offending:
            return layout
    name, axis = readings[min(readings, key=lambda layout: len(readings[layout]))][0]   # NCHW first on a tie
    raise NativeParamError(name, f"{n[name]} acts along axis {axis}: with the window {n['window_dimensions']} the "
                                 "array is neither NCHW (N, C: axes 0, 1) nor NHWC (axes 0, 3); a pooling window "
                                 "spans H and W only (1, and padding (0, 0), on N and C)")


def _max_canonical(n: dict, input_shape: list) -> dict:
    layout = pool_layout(n)
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    pad = n["padding"]
    return dict(kernel_size=[n["window_dimensions"][a] for a in axes], stride=[n["window_strides"][a] for a in axes],
                padding=pad.lower() if isinstance(pad, str) else _nonnegative([pad[a] for a in axes]),
                ceil_mode=False, dilation=[n["window_dilation"][a] for a in axes], layout=layout)


def _max_read(program, shapes: dict) -> dict:
    kw = find_call(program, "jax.lax.reduce_window").kwargs
    init = kw["init_value"]
    return dict(init_value=init.args[0] if isinstance(init, Expr) else init, computation=kw["computation"].path,
                **{k: plain(kw[k]) for k in ("window_dimensions", "window_strides", "padding", "window_dilation")})


MAX_POOL = Inverse(
    "jax.lax.reduce_window",
    {"init_value": Arg(init_value, REQUIRED), "computation": Arg(computation, REQUIRED),
     "window_dimensions": Arg(SEQ4, REQUIRED), "window_strides": Arg(SEQ4, None), "padding": Arg(padding(4), "VALID"),
     "base_dilation": Arg(_ones, None), "window_dilation": Arg(SEQ4, None)},
    _max_canonical, _max_read, _complete_window)


# ---------------------------------------------------------------- avg_pool2d (flax.linen.avg_pool)

def _avg_complete(native: dict) -> dict:
    if native["strides"] is None:
        native["strides"] = [1, 1]      # flax: `strides or (1,) * len(window_shape)`
    return native


def _avg_canonical(n: dict, input_shape: list) -> dict:
    pad = n["padding"]
    return dict(kernel_size=n["window_shape"], stride=n["strides"],
                padding=pad.lower() if isinstance(pad, str) else _nonnegative(pad), ceil_mode=False,
                count_include_pad=n["count_include_pad"], layout="NHWC")


def _channels_last(program) -> bool:
    """Whether the adapter's program transposes the canonical NCHW ``x`` to NHWC."""
    return any(expr.fn == Method(Ref("x"), "transpose") for expr in calls(program))


def _avg_read(program, shapes: dict) -> dict:
    if not _channels_last(program):
        raise Unsupported("flax.linen.avg_pool pools channels-last arrays only: an NCHW average has no flax "
                          "spelling")
    steps = {step.target: step.expr for step in program.steps}
    total, count = steps["total"].kwargs, steps["count"].kwargs
    counted = list(steps["ones"].args[0][1:3])
    include = counted != list(shape_of(shapes, "x")[2:])       # the count runs over the padding too
    if include and any(v for pair in count["padding"] for v in pair):    # (0, overhang) pairs: ceil_mode
        raise Unsupported("flax.linen.avg_pool has no ceil_mode: with count_include_pad it divides by the whole "
                          "window, past-the-padding overhang included")
    pad = total["padding"]
    return dict(window_shape=list(total["window_dimensions"][1:3]), strides=list(total["window_strides"][1:3]),
                padding=pad if isinstance(pad, str) else plain(pad[1:3]), count_include_pad=include)


AVG_POOL = Inverse(
    "flax.linen.avg_pool",
    {"window_shape": Arg(SEQ2, REQUIRED), "strides": Arg(SEQ2, None), "padding": Arg(padding(2), "VALID"),
     "count_include_pad": Arg(boolean, True)},
    _avg_canonical, _avg_read, _avg_complete)

NATIVE = {"conv2d_transpose": CONV_TRANSPOSE, "conv2d": CONV2D, "avg_pool2d": AVG_POOL, "max_pool2d": MAX_POOL}
