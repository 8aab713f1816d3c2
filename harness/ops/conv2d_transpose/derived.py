"""Values derived from a conv2d_transpose call: registry conditions, memory and work estimates.

``DERIVED`` names and explains the values known-divergence entries may test;
``derived(params, data)`` computes them for canonical parameters, valid or
not (harness/divergences.py). ``footprint`` estimates a case's memory (the
guard of harness/memory.py), ``flops`` a call's work (``conform bench``).
"""

from __future__ import annotations

from typing import Optional

from harness.ops.conv2d_transpose.oracle import BLOCK_BYTES
from harness.ops.conv2d_transpose.semantics import (Params, axis_args, axis_defect, axis_sizes, call_defects,
                                                     nchw)


def footprint(params: Params, dtype: str = "float64", outputs: int = 1) -> tuple[int, int]:
    """Estimated peak data bytes of one case: ``(parent, worker)``, for the memory guard.

    Works on invalid calls too, so an absurd case is refused before anything
    runs. Element counts: operands ``O`` (x, w, b; ``X`` of them x), output
    ``Y``, the phase-major canvas ``C`` of the oracle's NumPy fallback (the
    compiled float64 path places each output row from a one-row buffer
    instead: ``C`` then only over-counts) and its products ``P``
    (``kh·kw·C_out`` per input pixel, or with stride 1 ``C_in·kw`` terms and
    ``kh·C_out`` sums per output pixel of an input row; one block of images
    or input rows at a time on each of up to two threads: at most
    ``oracle.BLOCK_BYTES`` each, counted at 4 bytes an element so that it
    bounds both compute precisions, or one input row's). The
    frameworks' own resident memory is not included (``harness.memory`` adds
    it).

    Parent, float64 throughout, the larger of two phases:

    * preparing: the operands (``w`` counted twice: the oracle re-orders it),
      the oracle output, the ``|x|, |w|, |b|`` copies and the oracle's second
      run for ``B`` (a contiguous ``x``, a block of products, the canvas, its
      crop, and ``out + b`` and its contiguous copy): ``2·O + X + P + 2·C +
      3·Y``;
    * judging: operands, output and ``B``, each backend's answer (``outputs`` of
      them, ``a`` bytes each: 4 for float16/float32 cases, whose outputs come
      back as float32, else 8), and a failure's reproducer (its bound and the
      compressed ``inputs.npz`` built in memory, about ``2·O + 7·Y``). The
      comparison works in blocks of ``compare.BLOCK`` elements (a few MB).

    Worker: the operands it receives (float64) and a framework copy, and the
    computation in the compute precision ``s`` (4 or 8 bytes): ``16·O +
    s·(X + P + 2·C + 3·Y)``, the oracle's own footprint (the ``numpy`` backend runs
    it), which also bounds the frameworks measured (tf.nn 350 MB, mindspore.nn
    265 MB, torch 258 MB for 422 MB estimated on input [4, 64, 128, 128], 64
    channels, k 3, s 2).
    """
    n, c_in, h, w = nchw(params)
    kh, kw = params.kernel_size
    sh, sw = params.stride
    dh, dw = params.dilation
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1
    out_h, out_w = params.output_shape or (full_h, full_w)
    canvas = n * params.out_channels * (max(full_h, out_h) + sh) * (max(full_w, out_w) + sw)
    output = n * params.out_channels * max(full_h, out_h) * max(full_w, out_w)
    x = n * c_in * h * w
    operands = x + c_in * params.out_channels * kh * kw // max(params.groups, 1) + params.out_channels
    answer = 4 if dtype in ("float16", "float32") else 8
    # A block holds an input row's products (the scatter), or its kernel-column terms and kernel-row sums
    # (stride 1: ``_by_row_products``), whichever is larger; plus w re-ordered once.
    per_row = max(w * kh * kw * params.out_channels, (c_in * kw + kh * params.out_channels) * max(full_w, out_w))
    operands += c_in * params.out_channels * kh * kw // max(params.groups, 1)
    products = min(n * h * per_row, 2 * max(BLOCK_BYTES // 4, per_row))
    preparing = 8 * (2 * operands + x + products + 2 * canvas + 3 * output)
    judging = 8 * (operands + 2 * output) + answer * outputs * output + 8 * (2 * operands + 7 * output)
    compute = 8 if dtype == "float64" else 4
    worker = 16 * operands + compute * (x + products + 2 * canvas + 3 * output)
    return max(preparing, judging), worker



def flops(resolved) -> float:
    """Multiply-adds × 2 of one call: ``2·N·C_in·H·W·(C_out/groups)·kh·kw`` (``conform bench``)."""
    r = resolved
    kh, kw = r.kernel
    return 2.0 * r.batch * r.in_channels * r.in_hw[0] * r.in_hw[1] * (r.out_channels // r.groups) * kh * kw


#: Values the semantics derives from a call, for conditions in the known-divergence
#: registry (harness/divergences.py). Per-axis values are ``[height, width]``.
DERIVED = {
    "valid_call": "the canonical semantics accepts the call",
    "padding_form": "'same', 'same_lower', 'valid' or 'explicit'",
    "size_rule": "'tensorflow' or 'keras': how 'same'/'valid' size the output with output_padding (Note "
                 "[Padding forms])",
    "batch": "N, the number of images",
    "in_size": "[H, W] of the input",
    "single_column_input_strided": "W == 1 with stride_w ≥ 2 and kernel_w ≥ 2: the input gradient (a conv2d of "
                                   "dy) has one column and a window stepping along the width (F11)",
    "effective_kernel": "[K_h, K_w], K = dilation·(kernel − 1) + 1",
    "kernel_below_stride": "K < stride on some axis",
    "full_size": "[F_h, F_w], F = (H − 1)·stride + K: the output before crops",
    "crops": "[top, bottom, left, right] rows/columns cropped from the full output, every padding form resolved",
    "any_crop": "some crop is > 0",
    "crops_past_full": "[h, w]: the crops of that axis add up to more than the full output F (a valid call only "
                       "when output_padding brings the size back to ≥ 1)",
    "mixed_sign_padding": "[h, w]: the direct form's zero padding K − 1 − crop is negative before and positive "
                          "after on that axis (crop_before > K − 1 > crop_after)",
    "out_size": "[H_out, W_out] (≤ 0 when crops remove the whole output)",
    "output_size_is_default": "out_size is what the padding form gives without output_shape or output_padding "
                              "(by TensorFlow's rule)",
    "extra_rows": "[rows, columns] kept past F − crop (output_padding, or what output_shape implies)",
    "output_padding_any": "extra_rows > 0 on some axis",
    "output_padding_not_below_stride": "extra_rows ≥ stride on some axis (canonical when below the dilation)",
    "out_above_valid_range": "out_size > F + stride − 1 on some axis: no crop reaches it (the forward conv of "
                             "such an output has more than H rows)",
    "output_shape_past_stride": "[h, w]: an output_shape is given and the extra_rows it implies on that axis are "
                                "≥ stride (reachable only because dilation > stride)",
    "extra_rows_past_stride": "[h, w]: extra_rows ≥ stride on that axis (output_padding or output_shape; "
                              "allowed only because dilation > stride)",
    "symmetric_crops": "top == bottom and left == right crops (every padding form resolved)",
    "output_padding_holds_values": "an extra row/column holds a value of the full output: its crop is > 0 "
                                   "and the data reaches it (an impulse fill is one 1 at the centre)",
    "output_padding_depends_on_x": "an extra row/column holds a full-output value through a nonzero weight "
                                   "tap, whatever x holds: the input gradient reads the cotangent there",
    "output_padding_depends_on_w": "an extra row/column holds a full-output value through a nonzero input "
                                   "element, whatever w holds: the weight gradient reads the cotangent there",
    "out_below_effective_kernel": "[h, w]: out_size < K on that axis",
    "uncropped_width_is_out_channels": "F_w + max(0, extra_rows_w − right crop) == out_channels: the width "
                                       "before any crop (what a layer that crops afterwards, as Keras' "
                                       "Conv2DTranspose + Cropping2D, computes) equals the channels",
    "out_width_is_out_channels": "W_out == out_channels: in NCHW the output's last axis has as many elements as "
                                 "channels (Keras' add then takes a (1, C, 1, 1) bias for NHWC: F9)",
    "dilated_padded_size": "[h, w]: out_size + K − 1, the stride-dilated input (H−1)·s + 1 with the transposed "
                           "form's zero padding (K−1−pt, K−1−pb+op) (jax.lax.conv_transpose's padded lhs)",
    "out_channels_per_group": "out_channels // groups (0: empty filters)",
    "call_defects": "the rules about the whole call it breaks (groups, output_padding with 'same'/'valid' by "
                    "TensorFlow's rule, "
                    "output_padding with output_shape), as the fields InvalidCall names; [] for none",
    "axis_defects": "[h, w]: the field the rule of that axis rejects (padding: no rows left, output_padding: "
                    "too large, output_shape: unreachable), null where the axis is fine",
    "valid_size_check_truncated": "[h, w]: trunc((out_size − K) / stride) + 1 == H, the 'valid' size check "
                                  "with division truncating toward zero; it accepts out_size < K (within one "
                                  "stride) on a 1-row input, which the canonical ceil rule rejects",
}


def _reaches(lo: int, hi: int, size: int, k: int, s: int, d: int, x_impulse: bool, w_impulse: bool) -> bool:
    """Whether any full-output index in [lo, hi) receives a product of nonzero operands.

    Full index ``i·s + j·d`` gets ``x[i]·w[j]``; an impulse fill is nonzero only at the centre.
    """
    for j in ([k // 2] if w_impulse else range(k)):
        offset = j * d
        i = size // 2 if x_impulse else max(0, -(-(lo - offset) // s))
        if (0 <= i < size) and lo <= i * s + offset < hi:
            return True
    return False


def _defects(params: dict) -> tuple[list[str], list[Optional[str]]]:
    """The fields ``call_defects`` and each axis's rule name (``InvalidCall.field``), not only the first."""
    try:
        model = Params.model_validate(params)
    except ValueError:
        return ["params"], [None, None]
    return sorted({d.field for d in call_defects(model)}), [axis_defect(args) for args in axis_args(model)]


def derived(params: dict, data: dict) -> dict:
    """The values of ``DERIVED`` for canonical ``params`` (valid or not) and the case's data fills."""
    n, a, b, c = params["input"]
    h, w = (a, b) if params.get("layout") == "NHWC" else (b, c)
    form = params["padding"] if isinstance(params["padding"], str) else "explicit"
    pads = ((0, 0), (0, 0)) if form != "explicit" else (tuple(params["padding"][:2]), tuple(params["padding"][2:]))
    shape = params.get("output_shape") or (None, None)
    axes = list(zip((h, w), params["kernel_size"], params["stride"], params["dilation"], pads,
                    params["output_padding"], shape))
    rule = params.get("size_rule", "tensorflow")
    sizes = [axis_sizes(size, k, s, d, form, p, op, out, rule) for size, k, s, d, p, op, out in axes]
    defaults = [axis_sizes(size, k, s, d, form, p, 0, None)[3] for size, k, s, d, p, op, out in axes]
    eff = [d * (k - 1) + 1 for _, k, _, d, *_ in axes]
    full = [(size - 1) * s + e for (size, _, s, *_), e in zip(axes, eff)]
    crops = [c for lo, hi, _, _ in sizes for c in (lo, hi)]
    extra = [op for _, _, op, _ in sizes]
    out = [o for *_, o in sizes]
    x_imp, w_imp = data.get("x") == "impulse", data.get("w") == "impulse"

    def holds(x_imp: bool, w_imp: bool) -> bool:
        """Whether an extra row/column receives a product of nonzero operands (either fill taken as given)."""
        def reached(axis: int, lo: int, hi: int) -> bool:
            size, k, s, d, *_ = axes[axis]
            return _reaches(max(lo, 0), min(hi, full[axis]), size, k, s, d, x_imp, w_imp)

        return n > 0 and min(out) > 0 and any(
            extra[a] > 0 and reached(a, full[a] - crops[2 * a + 1], full[a] - crops[2 * a + 1] + extra[a])
            and reached(1 - a, crops[2 * (1 - a)], crops[2 * (1 - a)] + out[1 - a]) for a in (0, 1))
    whole, axis_defects = _defects(params)
    truncated = [int((o - e) / s) + 1 == size for o, e, (size, _, s, *_) in zip(out, eff, axes)]
    return {
        "valid_call": not whole and not any(axis_defects), "call_defects": whole, "axis_defects": axis_defects,
        "valid_size_check_truncated": truncated, "padding_form": form, "size_rule": rule, "batch": n, "in_size": [h, w], "effective_kernel": eff,
        "kernel_below_stride": any(e < s for e, s in zip(eff, params["stride"])),
        "single_column_input_strided": w == 1 and params["stride"][1] >= 2 and params["kernel_size"][1] >= 2,
        "full_size": full, "crops": crops, "any_crop": any(crops), "out_size": out,
        "crops_past_full": [crops[0] + crops[1] > full[0], crops[2] + crops[3] > full[1]],
        "mixed_sign_padding": [crops[2 * a] > eff[a] - 1 > crops[2 * a + 1] for a in (0, 1)],
        "output_size_is_default": out == defaults, "extra_rows": extra, "output_padding_any": any(extra),
        "output_padding_not_below_stride": any(e >= s for e, s in zip(extra, params["stride"])),
        "out_above_valid_range": any(o > f + s - 1 for o, f, s in zip(out, full, params["stride"])),
        "output_padding_holds_values": holds(x_imp, w_imp),
        "output_padding_depends_on_x": holds(False, w_imp), "output_padding_depends_on_w": holds(x_imp, False),
        "output_shape_past_stride": [o is not None and op >= st
                                     for o, op, st in zip(shape, extra, params["stride"])],
        "extra_rows_past_stride": [op >= st for op, st in zip(extra, params["stride"])],
        "symmetric_crops": crops[0] == crops[1] and crops[2] == crops[3],
        "out_below_effective_kernel": [o < e for o, e in zip(out, eff)],
        "out_width_is_out_channels": out[1] == params["out_channels"],
        "uncropped_width_is_out_channels": full[1] + max(0, extra[1] - crops[3]) == params["out_channels"],
        "dilated_padded_size": [o + e - 1 for o, e in zip(out, eff)],
        "out_channels_per_group": params["out_channels"] // max(params["groups"], 1),
    }
