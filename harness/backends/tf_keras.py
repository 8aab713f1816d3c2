"""Backend ``tf.keras``: Keras 3 layers on the TensorFlow backend (``KERAS_BACKEND=tensorflow``).

Each call builds the layer (``keras.layers.Conv2DTranspose``, ``Conv2D``,
``AveragePooling2D``, ``MaxPooling2D``) for the input's shape, loads the
canonical weights with ``set_weights`` (kernels ``(kh, kw, C_out, C_in)``
transposed, ``(kh, kw, C_in/groups, C_out)`` forward), and calls it. Native:
``strides``, ``padding='same'|'valid'``, ``output_padding``, ``dilation_rate``,
``data_format`` (the case layout: NCHW is ``channels_first``), ``use_bias``,
``groups`` (``Conv2D`` only) and the layer's ``dtype``.

What Keras lacks, and what is done instead:

* explicit padding: ``Conv2D`` and average pooling with ``count_include_pad``
  get a ``ZeroPadding2D`` layer first (zeros are what they pad with);
  ``Conv2DTranspose`` computes ``'valid'`` (with the ``output_padding`` that
  reaches any rows past the full output) and a ``Cropping2D`` layer crops it.
  Both are Keras layers, marked emulated. Max pooling pads with −∞, which no
  Keras layer does: unsupported unless the pads are what ``'same'`` pads.
* ``output_shape`` (conv2d_transpose): Keras has none; a reachable one is the
  ``output_padding`` that gives it by Keras' size rule (marked emulated).
* conv2d_transpose's canonical ``valid`` is Keras' ``output_padding=0``:
  Keras' default ``None`` gives ``(H−1)·s + max(K, s)``, ``H·s`` where the
  kernel is smaller than the stride (Note [Padding forms],
  harness/ops/conv2d_transpose/semantics.py); ``size_rule: keras`` is
  Keras' ``padding`` + ``output_padding`` itself.
* unsupported: ``Conv2DTranspose`` groups (no such argument), strides > 1
  with dilation > 1 (both layers refuse it), pooling ``ceil_mode`` that adds
  a window, max-pooling dilation, a call the canonical semantics rejects where
  Keras would be asked a different call (no explicit padding or output_shape).

Keras' TensorFlow backend runs ``channels_first`` convolutions and pooling in
NHWC on CPU itself, but passes NCHW to ``tf.nn.conv_transpose``, whose
float64 kernel "only supports NHWC": that call falls back to
``channels_last`` with the input and output transposed (emulated), as tf.nn's.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Optional

from harness.backends import tf_keras_native
from harness.backends.base import Backend, Call, Unsupported, first_line
from harness.backends.program import Fallback, Import, Method, Program, Ref, Step
from harness.backends.program import Call as Expr
from harness.backends.tf_keras_params import PARAMETERS
from harness.backends.tf_nn import CPU_CAPABILITY_GAPS, leaves, result
from harness.ops.conv2d_transpose.semantics import keras_size
from harness.ops.pooling import frameworks as pooling_gaps

ENVIRONMENT = (("KERAS_BACKEND", "tensorflow"), ("TF_CPP_MIN_LOG_LEVEL", "2"))
#: Canonical operand layout -> Keras kernel layout (numpy transposes).
TRANSPOSED_KERNEL = (2, 3, 1, 0)     # (C_in, C_out, kh, kw) -> (kh, kw, C_out, C_in)
FORWARD_KERNEL = (2, 3, 1, 0)        # (C_out, C_in/g, kh, kw) -> (kh, kw, C_in/g, C_out)


def data_format(layout: str) -> str:
    return "channels_last" if layout == "NHWC" else "channels_first"


def layer_output_padding(params: dict, resolved: Optional[dict], x_shape) -> tuple[Optional[tuple], list[str], bool]:
    """Keras' ``output_padding`` for a 'same'/'valid' conv2d_transpose call (``None``: Keras' default), notes
    saying what it stands for, and whether that is an emulation (an ``output_shape`` posed through it)."""
    p = params
    form, op = p["padding"], tuple(p["output_padding"])
    if p.get("size_rule") == "keras":
        return op, [], False
    sizes = list(zip(x_shape[2:], p["kernel_size"], p["stride"], p["dilation"]))
    if p["output_shape"] is None and form == "same":
        return None, [], False
    if p["output_shape"] is None:   # valid: Keras' None is F only where K >= s
        below = any(d * (k - 1) + 1 < s for _, k, s, d in sizes)
        note = ["padding 'valid' posed with output_padding=0: Keras' default None gives (H−1)·s + max(K, s) "
                "where the kernel is smaller than the stride"] if below else []
        return ((0, 0) if below else None), note, False
    if resolved is None:
        raise Unsupported("Keras' Conv2DTranspose has no output_shape: an unreachable one cannot be posed")
    wanted = tuple(resolved["out_hw"])
    if form == "same" and wanted == tuple(n * s for n, _, s, _ in sizes):
        return None, [f"output_shape {list(wanted)} is Keras' default for 'same' (output_padding=None)"], False
    derived = tuple(out - keras_size(n, k, s, d, form, 0) for out, (n, k, s, d) in zip(wanted, sizes))
    if any(not 0 <= o < s for o, (_, _, s, _) in zip(derived, sizes)):
        raise Unsupported(f"output_shape {list(wanted)} needs output_padding {list(derived)} in Keras' size rule, "
                          "outside 0 ≤ output_padding < strides")
    return derived, [f"output_shape {list(wanted)} expressed as output_padding={derived} (Keras' size rule)"], True


class TfKerasBackend(Backend):
    id = "tf.keras"
    framework = "keras"
    distribution = "keras"
    environment = "keras"
    import_name = "keras"
    resident_bytes = 768 << 20      # tf.nn measured 551 MiB; Keras adds its own modules
    plans_calls = True
    PARAMETERS = PARAMETERS
    NATIVE = tf_keras_native.NATIVE
    # No `accumulation` override: Keras calls the same TensorFlow kernels as tf.nn (see there).

    def setup(self) -> None:
        os.environ["KERAS_BACKEND"] = "tensorflow"   # before the first import of keras: it reads it once
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(f"keras was imported with backend {keras.backend.backend()!r}, not tensorflow")

    def unsupported_reason(self, exc: BaseException) -> Optional[str]:
        if any(gap in str(exc) for gap in CPU_CAPABILITY_GAPS):
            kernel = "TensorFlow CPU gradient kernel" if self._in_backward else "TensorFlow CPU kernel"
            return f"{kernel} (under Keras): {first_line(str(exc).split('}}')[-1])}"
        return None

    # ------------------------------------------------------------------ operators

    def conv2d_transpose(self, call: Call) -> Program:
        p, r = call.params, call.resolved
        if p["groups"] > 1:
            raise Unsupported("keras.layers.Conv2DTranspose has no groups")
        _no_strided_dilation(p, "Conv2DTranspose")
        keras_rule = p.get("size_rule") == "keras"
        if r is None and not keras_rule:
            raise Unsupported("Keras has no explicit padding, output_shape, or output_padding with "
                              "TensorFlow's 'same'/'valid' sizes: a call the canonical semantics rejects cannot "
                              "be posed as itself")
        notes, crop, emulated = [], None, False
        kw = dict(strides=tuple(p["stride"]), dilation_rate=tuple(p["dilation"]))
        if p["padding"] in ("same", "valid"):   # 'same_lower' (no such Keras padding): its crops, as explicit
            op, notes, emulated = layer_output_padding(p, r, call.arrays["x"].shape)
            kw.update(padding=p["padding"], output_padding=op)
        else:
            # full[t : t + out]: 'valid' gives F rows (+ e zero rows through output_padding), then crop.
            t, b, left, right = r["crops"]
            over = tuple(max(0, o - c) for o, c in zip(r["output_padding"], (b, right)))
            if any(e >= s for e, s in zip(over, p["stride"])):
                raise Unsupported(f"explicit padding keeps {list(over)} rows/columns past the full output: Keras "
                                  "reaches them only through output_padding, which must be < strides")
            crop, emulated = ((t, max(0, b - r["output_padding"][0])), (left, max(0, right - r["output_padding"][1]))), True
            kw.update(padding="valid", output_padding=over)
            notes.append(f"explicit padding {p['padding']} (output_padding {p['output_padding']}): 'valid' with "
                         f"output_padding={over}, then Cropping2D({crop}) (Keras has no explicit padding)")
        main = self._layers(call, call.layout, "keras.layers.Conv2DTranspose", (p["out_channels"], tuple(p["kernel_size"])),
                            kw, TRANSPOSED_KERNEL, crop=crop, notes=notes, emulated=emulated)
        if call.layout != "NCHW":
            return main
        note = ("NCHW emulated: the TF CPU kernel behind Keras only supports NHWC here ({error}); run "
                "channels_last, input and output transposed")
        fallback = self._layers(call, "NHWC", "keras.layers.Conv2DTranspose", (p["out_channels"], tuple(p["kernel_size"])),
                                kw, TRANSPOSED_KERNEL, crop=crop, notes=notes, emulated=emulated)
        return replace(main, fallback=Fallback("only supports NHWC", fallback, note))

    def conv2d(self, call: Call) -> Program:
        p = call.params
        _no_strided_dilation(p, "Conv2D")
        kw = dict(strides=tuple(p["stride"]), dilation_rate=tuple(p["dilation"]), groups=p["groups"])
        pad, notes = None, []
        if p["padding"] in ("same", "valid"):
            kw["padding"] = p["padding"]
        else:   # explicit, or 'same_lower' (no such Keras padding): the pads it resolves to
            if p["padding"] == "same_lower" and call.resolved is None:
                raise Unsupported("Keras has no 'same_lower' padding: an invalid call with it cannot be posed")
            t, b, left, right = call.resolved["pads"] if p["padding"] == "same_lower" else p["padding"]
            pad, kw["padding"] = ((t, b), (left, right)), "valid"
            notes.append(f"explicit padding {p['padding']}: ZeroPadding2D({pad}) then padding='valid'")
        args = (p["out_channels"], tuple(p["kernel_size"]))
        main = self._layers(call, call.layout, "keras.layers.Conv2D", args, kw, FORWARD_KERNEL, pad=pad, notes=notes,
                            emulated=pad is not None)
        if call.layout != "NCHW":
            return main
        note = ("NCHW emulated: Keras passes channels_first to a TF CPU kernel that only supports NHWC here ({error}); "
                "run channels_last, input and output transposed")
        fallback = self._layers(call, "NHWC", "keras.layers.Conv2D", args, kw, FORWARD_KERNEL, pad=pad, notes=notes,
                                emulated=True)
        return replace(main, fallback=Fallback("only supports the NHWC tensor format", fallback, note))

    def avg_pool2d(self, call: Call) -> Program:
        return self._pool(call, "keras.layers.AveragePooling2D")

    def max_pool2d(self, call: Call) -> Program:
        return self._pool(call, "keras.layers.MaxPooling2D")

    def _pool(self, call: Call, layer: str) -> Program:
        p, r = call.params, call.resolved
        gap = pooling_gaps.keras_gap(call.op, p, r, call.dtype)
        if gap:
            raise Unsupported(gap)
        notes, pad = [], None
        form = pooling_gaps.tf_form(p, r)
        zeros = pooling_gaps.keras_zero_pads(call.op, p, r)
        if zeros is not None:   # zeros counted in the average, or reached by no window: a ZeroPadding2D layer
            t, b, left, right = zeros
            pad, form = ((t, b), (left, right)), "VALID"
            notes.append(f"padding {p['padding']} (count_include_pad={p.get('count_include_pad', False)}): "
                         f"ZeroPadding2D({pad}) then padding='valid'")
        elif not isinstance(p["padding"], str):
            notes.append(f"padding {p['padding']} expressed as {form.lower()!r} (the same pads)")
        if p["ceil_mode"]:
            notes.append("ceil_mode=true adds no window to this call: posed without it (Keras has no ceil_mode)")
        kw = dict(pool_size=tuple(p["kernel_size"]), strides=tuple(p["stride"]), padding=form.lower())
        return self._layers(call, call.layout, layer, (), kw, None, pad=pad, notes=notes, emulated=bool(notes))

    # ------------------------------------------------------------------ the program

    def _layers(self, call: Call, layout: str, layer: str, args: tuple, kw: dict, kernel_perm, *,
                pad=None, crop=None, notes=(), emulated=False) -> Program:
        """``[ZeroPadding2D] -> layer -> [Cropping2D]`` in ``layout`` (the case's, or NHWC for a fallback).

        The layers are made (and the main one built for the shape it will see and given the canonical
        weights) before any of them is called: so a backward program differentiates the calls alone, with
        the layer's kernel and bias Variables as its weight leaves (Note [Gradients] in ``autodiff.py``)."""
        fmt, dtype = data_format(layout), call.dtype
        emulated = emulated or layout != call.layout
        x = Expr(Method(Ref("x"), "transpose"), (0, 2, 3, 1)) if layout == "NHWC" else Ref("x")   # canonical: NCHW
        steps = [Step("x", Expr("keras.ops.cast", (Expr("keras.ops.convert_to_tensor", (x,)), dtype)), "prepare",
                      comment="canonical values, exact in the dtype")]
        weights = []
        if kernel_perm is not None:
            steps.append(Step("kernel", Expr(Method(Ref("w"), "transpose"), kernel_perm), "prepare",
                              comment="canonical weights in Keras' kernel layout"))
            weights = [Ref("kernel")] + ([Ref("b")] if "b" in call.arrays else [])
            kw = {**kw, "use_bias": "b" in call.arrays}
        cropped = crop is not None and any(c for side in crop for c in side)
        if pad is not None:
            steps.append(Step("pad", Expr("keras.layers.ZeroPadding2D", (), dict(padding=pad, data_format=fmt,
                                                                                dtype=dtype))))
        steps.append(Step("net", Expr(layer, args, {**kw, "data_format": fmt, "dtype": dtype})))
        if weights:
            steps += [Step(None, Expr(Method(Ref("net"), "build"), (_seen_shape(call, layout, pad),))),
                      Step(None, Expr(Method(Ref("net"), "set_weights"), (weights,)))]
        if cropped:
            steps.append(Step("crop", Expr("keras.layers.Cropping2D", (), dict(cropping=crop, data_format=fmt,
                                                                              dtype=dtype))))
        if pad is not None:
            steps.append(Step("x_padded", Expr(Ref("pad"), (Ref("x"),)), timed=True))
        steps.append(Step("y", Expr(Ref("net"), (Ref("x_padded" if pad is not None else "x"),)), timed=True))
        if cropped:
            steps.append(Step("y", Expr(Ref("crop"), (Ref("y"),)), timed=True))
        out = "float64" if dtype == "float64" else "float32"
        steps.append(Step("out", Expr("keras.ops.convert_to_numpy", (Expr("keras.ops.cast", (Ref("y"), out)),)),
                          "finish"))
        if layout != call.layout:
            steps.append(Step("out", Expr(Method(Ref("out"), "transpose"), (0, 3, 1, 2)), "finish"))
        operands = ("x",) + (("w", "b") if "b" in call.arrays else ("w",) if kernel_perm is not None else ())
        return Program("keras", (Import("keras"),), operands, tuple(steps), "out", emulated, tuple(notes),
                       environment=ENVIRONMENT,
                       leaves=leaves(call, layout, kernel_perm, *(Method(Ref("net"), v) for v in ("kernel", "bias"))),
                       result=result(call, layout))


def _seen_shape(call: Call, layout: str, pad) -> tuple[int, ...]:
    """The shape the main layer is called with: the input in ``layout``, after the ``ZeroPadding2D`` if any."""
    n, c, h, w = call.arrays["x"].shape
    if pad is not None:
        (t, b), (left, right) = pad
        h, w = h + t + b, w + left + right
    return (n, h, w, c) if layout == "NHWC" else (n, c, h, w)


def _no_strided_dilation(params: dict, layer: str) -> None:
    if max(params["stride"]) > 1 and max(params["dilation"]) > 1:
        raise Unsupported(f"keras.layers.{layer} refuses strides > 1 with dilation_rate > 1")

