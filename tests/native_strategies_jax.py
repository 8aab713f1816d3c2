"""Hypothesis strategies for ``jax.lax`` native calls (tests/test_native.py; the other surfaces' are in
``native_strategies.py``).

JAX takes sequences, never a bare int, so the spellings drawn are lists or tuples, defaults omitted or
written out, ``conv_general_dilated``'s and ``reduce_window``'s padding strings in any case (JAX upper-cases
them), ``reduce_window``'s init and computation in their accepted spellings. Within what the adapter poses
natively: ``rhs_spec`` 'OIHW', ``transpose_kernel=True``, ``conv_transpose``'s strings exactly 'SAME' and
'VALID', the ``conv_general_dilated`` form of a transposed convolution only with groups (ungrouped, the
adapter calls ``conv_transpose``). Transposed padding pairs include negative ones (crops past K−1) and
high pads past K−1 (output padding).
"""

from __future__ import annotations

from hypothesis import strategies as st

from native_strategies import _conv_geometry, _input


@st.composite
def seq(draw, values):
    return list(values) if draw(st.booleans()) else tuple(values)


@st.composite
def maybe(draw, native: dict, name: str, value, default):
    """Set ``name`` (as a list or tuple), or leave it out when it is the default (sometimes)."""
    if value == default and draw(st.booleans()):
        return
    native[name] = draw(seq(value)) if isinstance(value, list) else value


def _dilated_input_pads(draw, geo) -> list:
    """Per axis (lo, hi) of the stride-dilated input: any crop leaving an output ≥ 1, an output padding
    below max(s, d)."""
    pads = []
    for full, k, s, d in zip(geo["full"], geo["eff"], geo["s"], geo["d"]):
        top = draw(st.integers(0, full - 1))
        bottom = draw(st.integers(0, full - 1 - top))
        extra = draw(st.integers(0, max(s, d) - 1))
        pads.append([k - 1 - top, k - 1 - bottom + extra])
    return pads


@st.composite
def _conv2d_transpose(draw, geo, layout):
    kh, kw = geo["k"]
    dn = [layout, "OIHW", layout]
    native = {"dimension_numbers": draw(seq(dn))}
    if geo["g"] == 1:
        native.update(rhs=[geo["cin"], geo["cout"], kh, kw], strides=draw(seq(geo["s"])), transpose_kernel=True,
                      padding=draw(st.sampled_from(["SAME", "VALID", _dilated_input_pads(draw, geo)])))
        draw(maybe(native, "use_consistent_padding", False, False))
    else:
        native.update(rhs=[geo["cout"], geo["cig"], kh, kw], window_strides=[1, 1],
                      padding=_dilated_input_pads(draw, geo), lhs_dilation=draw(seq(geo["s"])),
                      feature_group_count=geo["g"])
    draw(maybe(native, "rhs_dilation", geo["d"], [1, 1]))
    if draw(st.booleans()):
        native["precision"] = "highest"
    return native


@st.composite
def _conv2d(draw, geo, layout):
    kh, kw = geo["k"]
    pad = draw(st.sampled_from(["SAME", "same", "SAME_LOWER", "VALID", "valid", "pairs"]))
    if pad == "pairs":
        pad = [[draw(st.integers(0, 2)), draw(st.integers(0, 2))] for _ in range(2)]
    native = {"rhs": [geo["cout"], geo["cig"], kh, kw], "window_strides": draw(seq(geo["s"])), "padding": pad}
    if layout == "NHWC" or draw(st.booleans()):
        native["dimension_numbers"] = [layout, "OIHW", layout]
    draw(maybe(native, "rhs_dilation", geo["d"], [1, 1]))
    draw(maybe(native, "lhs_dilation", [1, 1], [1, 1]))
    draw(maybe(native, "feature_group_count", geo["g"], 1))
    return native


def _spatial(layout: str, h, w, fill):
    return [fill, fill, h, w] if layout == "NCHW" else [fill, h, w, fill]


@st.composite
def _max_pool2d(draw, geo, layout):
    (kh, kw), (sh, sw), (dh, dw) = geo["k"], geo["s"], geo["d"]
    pad = draw(st.sampled_from(["SAME", "same", "SAME_LOWER", "VALID", "pairs"]))
    if pad == "pairs":
        pad = _spatial(layout, *[[draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))] for k in geo["k"]],
                       [0, 0])
    native = {"init_value": draw(st.sampled_from([float("-inf"), "-inf"])),
              "computation": draw(st.sampled_from(["max", "lax.max", "jax.lax.max"])),
              "window_dimensions": draw(seq(_spatial(layout, kh, kw, 1))), "padding": pad}
    strides = _spatial(layout, sh, sw, 1)
    if isinstance(pad, str):
        native["window_strides"] = draw(seq(strides))
    else:
        draw(maybe(native, "window_strides", strides, [1, 1, 1, 1]))
    draw(maybe(native, "window_dilation", _spatial(layout, dh, dw, 1), [1, 1, 1, 1]))
    draw(maybe(native, "base_dilation", [1, 1, 1, 1], [1, 1, 1, 1]))
    return native


@st.composite
def _avg_pool2d(draw, geo):
    native = {"window_shape": draw(seq(geo["k"]))}
    pad = draw(st.sampled_from(["SAME", "same", "VALID", "pairs"]))
    if pad == "pairs":
        pad = [[draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))] for k in geo["k"]]
    draw(maybe(native, "padding", pad, "VALID"))
    draw(maybe(native, "strides", geo["s"], [1, 1]))
    draw(maybe(native, "count_include_pad", draw(st.booleans()), True))
    return native


@st.composite
def jax_lax(draw, op: str):
    """(native parameters, input shape in the native layout) for jax.lax's ``op``."""
    geo = _conv_geometry(draw, op == "conv2d_transpose")
    layout = "NHWC" if op == "avg_pool2d" else draw(st.sampled_from(["NCHW", "NHWC"]))
    native = {"conv2d_transpose": lambda: _conv2d_transpose(geo, layout), "conv2d": lambda: _conv2d(geo, layout),
              "max_pool2d": lambda: _max_pool2d(geo, layout), "avg_pool2d": lambda: _avg_pool2d(geo)}[op]()
    return draw(native), _input(geo, layout)
