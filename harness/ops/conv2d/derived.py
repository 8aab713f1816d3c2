"""Values derived from a conv2d call: registry conditions, memory and work estimates.

``DERIVED`` names and explains the values known-divergence entries may test;
``derived(params, data)`` computes them for canonical parameters, valid or
not (harness/divergences.py). ``footprint`` estimates a case's memory (the
guard of harness/memory.py), ``flops`` a call's work (``conform bench``).
"""

from __future__ import annotations

from math import prod

from harness.ops.conv2d.oracle import BLOCK_BYTES
from harness.ops.conv2d.semantics import InvalidCall, Params, axis_sizes, nchw, resolve, split_padding
from harness.ops.fields import pair


def footprint(params: Params, dtype: str = "float64", outputs: int = 1) -> tuple[int, int]:
    """Estimated peak data bytes of one case: ``(parent, worker)``, for the memory guard.

    Works on invalid calls too, so an absurd case is refused before anything
    runs. Same meaning as ``conv2d_transpose.footprint``; element counts:
    operands ``O`` (x, w, b; ``X`` of them x), output ``Y``, and the oracle's
    gathered terms ``S``: ``C_in·kh·kw`` per output pixel (with row stride
    1, ``C_in·kw`` terms and ``kh·C_out`` sums per output pixel of an input
    row), one block of images or rows at a time on each of up to two threads,
    at most ``oracle.BLOCK_BYTES`` each (counted at 4 bytes an element, a
    generous bound for both compute precisions) or one row's. One oracle run
    holds ``T = X + S + 3·Y``: a contiguous x, the gathered terms (or the
    term-by-term path's product, at most a block of the output), the output
    and its bias-added, re-ordered copy; ``w`` re-ordered once is counted in
    ``O`` twice. The frameworks' own resident memory is not included
    (``harness.memory`` adds it).

    * Parent, float64, the larger of preparing (operands, their ``|x|, |w|,
      |b|`` copies, the oracle output and the second oracle run for the
      magnitude ``B``: ``2·O + Y + T``) and judging (operands, output and
      ``B``; each backend's answer, ``a`` bytes an element: 4 for
      float16/float32 cases, whose outputs come back as float32, else 8; a
      failure's reproducer, about ``2·O + 7·Y``).
    * Worker: the operands it receives (float64) and a framework copy, and the
      oracle's run in the compute precision ``s`` (4 or 8 bytes), which the
      ``numpy`` backend runs and which bounds the frameworks' direct and
      im2col paths: ``16·O + s·T``.
    """
    n, c_in, h, w = nchw(params)
    form, pads = split_padding(params.padding)
    out_hw = [max(axis_sizes(size, k, s, d, form, p)[2], 0) for size, k, s, d, p in
              zip((h, w), params.kernel_size, params.stride, params.dilation, pads)]
    kh, kw = params.kernel_size
    x = n * c_in * h * w
    operands = x + 2 * params.out_channels * (c_in // max(params.groups, 1)) * kh * kw + params.out_channels
    output = n * params.out_channels * out_hw[0] * out_hw[1]
    # A block holds an output row's gathered terms, or an input row's kernel-column terms and row sums.
    per_row = max(c_in * kh * kw * max(out_hw[1], 0), kh * kw * params.out_channels * max(w, out_hw[1]))
    gather = min(n * max(out_hw[0], 0) * per_row, 2 * max(BLOCK_BYTES, per_row))
    run = x + gather + 3 * output
    answer = 4 if dtype in ("float16", "float32") else 8
    preparing = 8 * (2 * operands + output + run)
    judging = 8 * (operands + 2 * output) + answer * outputs * output + 8 * (2 * operands + 7 * output)
    compute = 8 if dtype == "float64" else 4
    return max(preparing, judging), 16 * operands + compute * run


#: Values the semantics derives from a call, for conditions in the known-divergence
#: registry (harness/divergences.py). Per-axis values are ``[height, width]``.
DERIVED = {
    "valid_call": "the canonical semantics accepts the call",
    "padding_form": "'same', 'same_lower', 'valid' or 'explicit'",
    "batch": "N, the number of images",
    "in_size": "[H, W] of the input",
    "effective_kernel": "[K_h, K_w], K = dilation·(kernel − 1) + 1",
    "kernel_below_stride": "K < stride on some axis: some input rows/columns are never read",
    "pads": "[top, bottom, left, right] zeros around the input, every padding form resolved",
    "any_pad": "some pad is > 0",
    "asymmetric_pad": "top ≠ bottom or left ≠ right (SAME with an odd total: the extra one at the bottom/right)",
    "pad_exceeds_half_kernel": "some pad is > (K − 1) / 2 (frameworks that forbid it: PyTorch's pooling, "
                               "MindSpore's explicit pad checks)",
    "padded_size": "[H + top + bottom, W + left + right]",
    "out_size": "[H_out, W_out] (≤ 0 when the kernel is larger than the padded input)",
    "out_width_is_out_channels": "W_out == out_channels: in NCHW the output's last axis has as many elements as "
                                 "channels (Keras' add then takes a (1, C, 1, 1) bias for NHWC: F9)",
    "single_column_strided": "W_out == 1 with stride_w ≥ 2 and kernel_w ≥ 2: one output column whose window "
                             "would step over columns (oneDNN's bfloat16 kernel reads it wrong: F11)",
    "dropped_tail": "[rows, columns] of the padded input past the last window ((padded − K) mod stride)",
    "kernel_exceeds_input": "K > H or K > W (only padding makes such a call valid)",
    "in_channels_per_group": "C_in // groups",
    "out_channels_per_group": "out_channels // groups",
    "depthwise": "groups == C_in (one input channel per group)",
    "groups_divide": "C_in and out_channels are both divisible by groups",
    "kernel_fits_undilated": "kernel_size ≤ padded_size on both axes (the kernel without its dilation)",
    "out_size_truncated": "[h, w]: trunc((padded − K + stride) / stride), the output size with C++ division "
                          "truncating toward zero (TensorFlow's GetWindowedOutputSize; 0 when −2·stride < "
                          "padded − K < 0, where the canonical size is < 1)",
    "out_size_truncated_plus_one": "[h, w]: trunc((padded − K) / stride) + 1, the same size truncated the other "
                                   "way (0 when −2·stride < padded − K ≤ −stride)",
    "out_size_floor": "[h, w]: floor((padded − K) / stride) + 1, the size rounded toward −∞ (0 when −stride ≤ "
                      "padded − K < 0; ``out_size`` gives padded − K there instead)",
    "output_shape_equals_input": "out_size == in_size and out_channels == C_in (the output has the input's shape)",
    "input_gradient_group_axis": "[h, w]: kernel 2, stride 2, dilation 1, pad before 1 and the last window starting "
                                 "on the last input row, so that the convolution of dy giving dx is unpadded there "
                                 "(window 2, base dilation 2, stride 1): an axis XLA's conv operand swapper takes "
                                 "for a 'group' dimension and keeps as it is (J4)",
    "input_gradient_swapped": "XLA's conv operand swapper swaps the operands of the convolution of dy giving dx "
                              "(ungrouped; over the axes it takes for neither group nor contraction dimensions, "
                              "the kernel's sizes multiply to more than dy's: J4)",
}


def _input_gradient_axis(size: int, k: int, s: int, d: int, lo: int, out: int) -> tuple[bool, bool, int, int]:
    """One axis of the convolution that computes dx as XLA's ``SwapConvolutionOperandsIfBeneficial`` reads it.

    That convolution (JAX's ``_conv_general_dilated_transpose_lhs``: the forward convolution's adjoint) takes
    dy dilated by the stride (base dilation ``s``), the flipped kernel (window ``k``, dilation ``d``, window
    stride 1) and the padding ``(K − 1 − lo, size + lo − (out − 1)·s − 1)``. Returns ``(group, contraction,
    kernel, swapped)``: whether the swapper keeps the axis as a group dimension (window k, base dilation k,
    stride k − 1, unpadded, undilated) or a contraction (window = dy's size, no dilations, unpadded), and the
    axis's factor in the kernel's and the swapped kernel's size products it compares.
    """
    before, after = d * (k - 1) - lo, size + lo - (out - 1) * s - 1
    plain = before == 0 and after == 0 and d == 1
    group = plain and s == k and k - 1 == 1     # base dilation k and window stride k − 1, which is 1 here
    contraction = plain and k == out and s == 1
    full = out == 1 and d == 1 and before == after == k - 1   # one dy element, padded by k − 1 on both sides
    return group, contraction, k, k if full else out


def derived(params: dict, data: dict) -> dict:
    """The values of ``DERIVED`` for canonical ``params`` (valid or not); ``data`` (the fills) is unused."""
    n, a, b, c = params["input"]
    c_in, h, w = (c, a, b) if params.get("layout") == "NHWC" else (a, b, c)
    form, pads = split_padding(params.get("padding", 0))
    ks, ss, ds = (pair(params.get(key, 1), 1) for key in ("kernel_size", "stride", "dilation"))
    axes = [axis_sizes(size, k, s, d, form, p) for size, k, s, d, p in zip((h, w), ks, ss, ds, pads)]
    eff = [d * (k - 1) + 1 for k, d in zip(ks, ds)]
    resolved_pads = [p for lo, hi, _ in axes for p in (lo, hi)]
    padded = [size + lo + hi for size, (lo, hi, _) in zip((h, w), axes)]
    groups = max(params.get("groups", 1), 1)
    sizes = [out for *_, out in axes]
    dx_axes = [_input_gradient_axis(size, k, s, d, lo, out) if out >= 1 else (False, False, 1, 1)
               for size, k, s, d, (lo, _, out) in zip((h, w), ks, ss, ds, axes)]
    kept = [a for a in dx_axes if not (a[0] or a[1])]
    try:
        resolve(Params.model_validate(params))
        valid = True
    except (InvalidCall, ValueError):
        valid = False
    return {
        "valid_call": valid, "padding_form": form, "batch": n, "in_size": [h, w], "effective_kernel": eff,
        "kernel_below_stride": any(e < s for e, s in zip(eff, ss)),
        "pads": resolved_pads, "any_pad": any(resolved_pads),
        "asymmetric_pad": resolved_pads[0] != resolved_pads[1] or resolved_pads[2] != resolved_pads[3],
        "pad_exceeds_half_kernel": any(2 * p > e - 1 for p, e in zip(resolved_pads, (eff[0], eff[0], eff[1], eff[1]))),
        "padded_size": padded, "out_size": [out for *_, out in axes],
        "out_width_is_out_channels": axes[1][-1] == params["out_channels"],
        "single_column_strided": axes[1][-1] == 1 and ss[1] >= 2 and ks[1] >= 2,
        "dropped_tail": [(p - e) % s if p >= e else 0 for p, e, s in zip(padded, eff, ss)],
        "kernel_exceeds_input": any(e > size for e, size in zip(eff, (h, w))),
        "in_channels_per_group": c_in // groups, "out_channels_per_group": params["out_channels"] // groups,
        "depthwise": groups == c_in,
        "groups_divide": not c_in % groups and not params["out_channels"] % groups,
        "kernel_fits_undilated": all(k <= p for k, p in zip(ks, padded)),
        "out_size_truncated": [int((p - e + s) / s) for p, e, s in zip(padded, eff, ss)],
        "out_size_truncated_plus_one": [int((p - e) / s) + 1 for p, e, s in zip(padded, eff, ss)],
        "out_size_floor": [(p - e) // s + 1 for p, e, s in zip(padded, eff, ss)],
        "output_shape_equals_input": [out for *_, out in axes] == [h, w] and params["out_channels"] == c_in,
        "input_gradient_group_axis": [a[0] for a in dx_axes],
        "input_gradient_swapped": groups == 1 and min(sizes) >= 1
                                  and prod(a[2] for a in kept) > prod(a[3] for a in kept),
    }


def flops(resolved) -> float:
    """Multiply-adds × 2 of one call: ``2·N·C_out·H_out·W_out·(C_in/groups)·kh·kw`` (``conform bench``)."""
    r = resolved
    kh, kw = r.kernel
    return 2.0 * r.batch * r.out_channels * r.out_hw[0] * r.out_hw[1] * (r.in_channels // r.groups) * kh * kw
