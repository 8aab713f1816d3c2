"""What each framework surface can pose of a pooling call: the gaps its adapter reports as ``unsupported``.

One function per surface, ``<surface>_gap(op, params, resolved, dtype)``,
returns the reason a *valid* call cannot be posed there, or None. The
adapters raise ``Unsupported`` with it, and the coverage capabilities
(``pooling.parts``) ask the same functions, so "this backend cannot run
that pair" has one source. These are framework restrictions, not canonical
rules (Note [Pooling windows]); each is measured or quoted from the
framework's source next to it:

* torch.functional, torch.nn: symmetric padding only (``padding`` is ``(ph, pw)``),
  ``pad ≤ kernel // 2`` (torch 2.13, ``pool2d_shape_check``: "pad should be
  smaller than or equal to half of kernel size"; it checks the kernel, not
  the effective kernel); no ``'same'``, posed as its padding when that is
  symmetric.
* tf.nn: ``avg_pool2d`` takes ``'SAME'``/``'VALID'`` only and excludes the
  padding from the average; explicit ``max_pool2d`` padding must be smaller
  than the window ("Top padding 3 needs to be smaller than the window size
  2"); no ``ceil_mode`` (posed only where it adds no window); no dilation
  (``tf.nn.pool`` has it for VALID only).
* ``same_lower`` (ONNX's SAME_LOWER) is no mode of any of them: posed as the pads it resolves to where
  the surface takes explicit pads (torch and MindSpore: when symmetric; tf.nn max: a padding list; tf.nn
  avg: as ``'SAME'`` when the pads are SAME's), else unsupported.
* onnxruntime: explicit pads smaller than the kernel (``PoolAttributes``: "Pad should be smaller than
  kernel").
* tf.keras: ``AveragePooling2D``/``MaxPooling2D`` take ``'same'``/``'valid'``
  only and call TensorFlow's pooling (``'same'`` excludes the padding from the
  average). A ``ZeroPadding2D`` layer first is exact wherever the zeros are
  counted (``count_include_pad``) or no window reaches them; max pooling's −∞
  padding has no layer. No ``ceil_mode``, no dilation (Keras 3.15
  ``keras/src/layers/pooling/base_pooling.py``). Not in ``parts.GAPS``,
  which decides the generated pairwise suite.
* mindspore.nn: ``pad_mode='pad'`` pads symmetrically per axis
  (``padding=(ph, pw)``); ``AvgPool3D`` (behind ``nn.AvgPool2d`` with
  padding) requires ``pt + pb ≤ k``; ``MaxPool3DWithArgmax`` (behind
  ``nn.MaxPool2d`` with padding) ``pad ≤ k // 2``; no bfloat16 ("For
  primitive[AvgPool3D], the input argument[x] must be a type of
  {Tensor[Float16], Tensor[Float32], Tensor[Float64]}"; ``ops.AvgPool`` fails
  on NumPy 2 first).
* mindspore.ops: ``ops.AvgPool``/``ops.MaxPool`` take 'same'/'valid' only; explicit padding,
  ``ceil_mode``, ``count_include_pad`` and dilation go to ``ops.avg_pool2d`` (AvgPool3D:
  ``(top, bottom, left, right)``, asymmetric allowed, ``top + bottom ≤ k``: "the sum of the pads in
  the two directions should be less than or equal to the corresponding kernel size") and
  ``ops.max_pool2d`` (MaxPoolWithArgmaxV2: ``(ph, pw)`` only, "pads ... must be ... a tuple of two";
  ``pad ≤ k // 2``); no bfloat16 CPU kernel in any of them ("Select CPU operator[AvgPool] fail!
  Unsupported data type!", measured with NumPy 1.26).
"""

from __future__ import annotations

from typing import Optional


def explicit_pads(params: dict, resolved: Optional[dict]) -> Optional[tuple[int, int, int, int]]:
    """The pads a call asks for: resolved (every form) for a valid call; for an invalid one, the explicit
    list or none for 'valid' (None for 'same'/'same_lower', whose pads need a valid call)."""
    if resolved is not None:
        return tuple(resolved["pads"])
    if params["padding"] == "valid":
        return (0, 0, 0, 0)
    return None if isinstance(params["padding"], str) else tuple(params["padding"])


def symmetric(pads) -> bool:
    return pads[0] == pads[1] and pads[2] == pads[3]


def adds_window(resolved: Optional[dict], params: dict) -> bool:
    """Whether ceil_mode gives more windows than floor mode (unknown for an invalid call: it may)."""
    if not params.get("ceil_mode"):
        return False
    if resolved is None:
        return True
    from harness.ops.pooling import axis_out
    for size, k, s, d, lo, hi, out in zip(resolved["in_hw"], resolved["kernel"], resolved["stride"],
                                          resolved["dilation"], resolved["pads"][::2], resolved["pads"][1::2],
                                          resolved["out_hw"]):
        if out > axis_out(size, d * (k - 1) + 1, s, lo, hi, False):
            return True
    return False


def touches_padding(resolved: Optional[dict]) -> bool:
    """Whether some window covers a padding position (then count_include_pad changes a divisor)."""
    if resolved is None:
        return True
    for size, k, s, lo, hi, out in zip(resolved["in_hw"], resolved["kernel"], resolved["stride"],
                                       resolved["pads"][::2], resolved["pads"][1::2], resolved["out_hw"]):
        if lo > 0 or (hi > 0 and (out - 1) * s + k > size + lo):
            return True
    return False


def torch_gap(op: str, params: dict, resolved: Optional[dict], dtype: str) -> Optional[str]:
    pads = explicit_pads(params, resolved)
    if pads is None:
        return f"torch has no padding {params['padding']!r} for pooling; an invalid call with it cannot be posed"
    if not symmetric(pads):
        what = f"padding {params['padding']!r} resolves to" if isinstance(params["padding"], str) else "padding"
        return f"{what} asymmetric pads {list(pads)}: torch pools with symmetric (ph, pw) only"
    kernel = params["kernel_size"]
    if pads[0] > kernel[0] // 2 or pads[2] > kernel[1] // 2:
        return (f"pads {list(pads)} exceed half the kernel {list(kernel)}: torch 2.13 requires pad ≤ kernel // 2 "
                "(pool2d_shape_check)")
    return None


def tf_gap(op: str, params: dict, resolved: Optional[dict], dtype: str) -> Optional[str]:
    padding = params["padding"]
    if op == "max_pool2d" and max(params.get("dilation", (1, 1))) > 1:
        return "tf.nn.max_pool2d has no dilation (tf.nn.pool has it with VALID only)"
    if adds_window(resolved, params):
        return "TensorFlow has no ceil_mode: the window it adds cannot be posed"
    if op == "avg_pool2d":
        if params.get("count_include_pad") and tf_form(params, resolved) != "VALID" and touches_padding(resolved):
            return "tf.nn.avg_pool2d excludes padding from the average: count_include_pad=true cannot be posed"
        if padding not in ("same", "valid") and tf_form(params, resolved) is None:
            what = "'same_lower' (its pads differ from 'SAME')" if padding == "same_lower" else "explicit padding"
            return f"tf.nn.avg_pool2d has no {what}: only 'SAME'/'VALID'"
    elif padding == "same_lower" and resolved is None:
        return "TensorFlow has no 'same_lower': an invalid call with it cannot be posed"
    elif padding not in ("same", "valid") and resolved is not None:
        window, pads = resolved["kernel"], resolved["pads"]
        if any(p >= window[i // 2] for i, p in enumerate(pads)):
            return (f"explicit padding {list(pads)} is not smaller than the window {list(window)}: "
                    "tf.nn.max_pool2d requires it")
    return None


def keras_gap(op: str, params: dict, resolved: Optional[dict], dtype: str) -> Optional[str]:
    if op == "max_pool2d" and max(params.get("dilation", (1, 1))) > 1:
        return "keras.layers.MaxPooling2D has no dilation"
    if adds_window(resolved, params):
        return "Keras has no ceil_mode: the window it adds cannot be posed"
    form = tf_form(params, resolved)
    if form is None and resolved is None and isinstance(params["padding"], str):
        return f"Keras has no padding {params['padding']!r}: an invalid call with it cannot be posed"
    if op == "avg_pool2d" and params.get("count_include_pad") and form == "SAME" and resolved is None:
        return "AveragePooling2D's 'same' excludes the padding: an invalid count_include_pad=true call cannot be posed"
    if form is None and touches_padding(resolved):
        if op == "max_pool2d":
            return "keras.layers.MaxPooling2D has no explicit padding, and no Keras layer pads with −∞"
        if not params.get("count_include_pad"):
            return ("keras.layers.AveragePooling2D has no explicit padding, and ZeroPadding2D's zeros would be "
                    "counted (count_include_pad=false)")
    return None


def keras_zero_pads(op: str, params: dict, resolved: Optional[dict]) -> Optional[tuple[int, int, int, int]]:
    """The pads a ``ZeroPadding2D`` layer adds before a Keras pooling layer (then ``'valid'``), or None where
    the layer's own ``'same'``/``'valid'`` is the call (``keras_gap`` has ruled the rest out)."""
    form = tf_form(params, resolved)
    if form is None:   # explicit, or 'same_lower' (its resolved pads): not the string itself
        return explicit_pads(params, resolved)
    if (op == "avg_pool2d" and params.get("count_include_pad") and form == "SAME"
            and touches_padding(resolved)):
        return tuple(resolved["pads"])
    return None


def tf_form(params: dict, resolved: Optional[dict]) -> Optional[str]:
    """'SAME'/'VALID' for a padding that equals what that mode pads (avg has nothing else): the canonical
    'same'/'valid' themselves, or an explicit or 'same_lower' padding whose pads are the same."""
    padding = params["padding"]
    if padding in ("same", "valid"):
        return padding.upper()
    if resolved is None:
        return None if isinstance(padding, str) or any(padding) else "VALID"
    padding = resolved["pads"]
    if not any(padding):
        return "VALID"
    from harness.ops.pooling import axis_pads
    same = []
    for size, k, s in zip(resolved["in_hw"], resolved["kernel"], resolved["stride"]):
        same += axis_pads(size, k, s, "same", (0, 0))
    return "SAME" if tuple(same) == tuple(padding) else None


def onnxruntime_gap(op: str, params: dict, resolved: Optional[dict], dtype: str) -> Optional[str]:
    """ONNX Runtime's pooling kernels require every explicit pad to be smaller than the kernel (not the
    dilated window): ``PoolAttributes`` (``core/providers/cpu/nn/pool_attributes.h``) fails the session with
    "Pad should be smaller than kernel" (measured on 1.31.1 and 1.32.0)."""
    padding, kernel = params["padding"], params["kernel_size"]
    if isinstance(padding, str):
        return None
    if any(p >= kernel[i // 2] for i, p in enumerate(padding)):
        return (f"pads {list(padding)} not smaller than the kernel {list(kernel)}: ONNX Runtime's pooling "
                "requires pad < kernel (pool_attributes.h)")
    return None


def mindspore_gap(op: str, params: dict, resolved: Optional[dict], dtype: str) -> Optional[str]:
    if dtype == "bfloat16":
        return ("MindSpore's pooling primitives take float16/float32/float64 only, and MindSpore 2.10's "
                "bfloat16 Tensors refuse NumPy 2")
    if mindspore_mode(params, resolved) == "same":
        return None
    pads = explicit_pads(params, resolved)
    if pads is None:
        return (f"padding {params['padding']!r} is posed with pad_mode='pad' as the pads it resolves to, which an "
                "invalid call does not have")
    if not symmetric(pads):
        return f"asymmetric pads {list(pads)}: pad_mode='pad' pads symmetrically per axis, padding=(ph, pw)"
    kernel = params["kernel_size"]
    if op == "avg_pool2d" and (2 * pads[0] > kernel[0] or 2 * pads[2] > kernel[1]):
        return f"pads {list(pads)}: AvgPool3D (nn.AvgPool2d with padding) requires top + bottom ≤ kernel"
    if op == "max_pool2d" and (pads[0] > kernel[0] // 2 or pads[2] > kernel[1] // 2):
        return f"pads {list(pads)}: MaxPool3DWithArgmax (nn.MaxPool2d with padding) requires pad ≤ kernel // 2"
    return None


def mindspore_mode(params: dict, resolved: Optional[dict]) -> str:
    """The pad_mode a call is posed with: 'same'/'valid' natively where the cell takes them, else 'pad'.

    ``nn.MaxPool2d`` takes ``dilation`` and ``ceil_mode`` only with ``pad_mode='pad'``; ``'same'`` with a
    ceil_mode that adds no window is still posed as ``'same'``.
    """
    padding = params["padding"]
    if padding not in ("same", "valid"):      # explicit, and 'same_lower' (no such pad_mode): its pads
        return "pad"
    if max(params.get("dilation", (1, 1))) > 1:
        return "pad"
    if padding == "valid" and params.get("ceil_mode"):
        return "pad"
    return padding


def mindspore_ops_uses_primitive(op: str, params: dict, resolved: Optional[dict]) -> bool:
    """Whether mindspore.ops poses a pooling call with ``ops.AvgPool``/``ops.MaxPool`` (pad_mode 'same'/
    'valid', nothing else) rather than ``ops.avg_pool2d``/``ops.max_pool2d``."""
    if params["padding"] not in ("same", "valid") or adds_window(resolved, params):   # the primitives' pad_modes
        return False
    if op == "max_pool2d":
        return max(params.get("dilation", (1, 1))) == 1
    # AvgPool excludes padding from the average: count_include_pad=true needs avg_pool2d where it counts
    return not (params.get("count_include_pad") and params["padding"] == "same" and touches_padding(resolved))


def mindspore_ops_gap(op: str, params: dict, resolved: Optional[dict], dtype: str) -> Optional[str]:
    if dtype == "bfloat16":
        return ("MindSpore 2.10's CPU pooling kernels (AvgPool, MaxPool, AvgPool3D, MaxPoolWithArgmaxV2) "
                "have no bfloat16")
    if mindspore_ops_uses_primitive(op, params, resolved):
        return None
    pads = explicit_pads(params, resolved)
    if pads is None:
        return f"ops.{op} has no padding {params['padding']!r}; an invalid call with it cannot be posed"
    kernel = params["kernel_size"]
    if op == "avg_pool2d" and (pads[0] + pads[1] > kernel[0] or pads[2] + pads[3] > kernel[1]):
        return f"pads {list(pads)}: ops.avg_pool2d (AvgPool3D) requires top + bottom ≤ kernel"
    if op == "max_pool2d" and not symmetric(pads):
        return f"asymmetric pads {list(pads)}: ops.max_pool2d pads symmetrically, padding=(ph, pw)"
    if op == "max_pool2d" and (pads[0] > kernel[0] // 2 or pads[2] > kernel[1] // 2):
        return f"pads {list(pads)}: ops.max_pool2d (MaxPoolWithArgmaxV2) requires pad ≤ kernel // 2"
    return None
