#!/usr/bin/env python3
"""Plain JAX (no conform): XLA aborts the process on the input gradient of an ordinary conv2d.

Finding J4 (docs/findings.md). Measured on jax/jaxlib 0.10.2 (CPU): ``jax.vjp`` of
``lax.conv_general_dilated(x [1, 1, 4, 4], w [1, 1, 2, 3], window_strides=(2, 1), padding=[(1, 1), (0, 0)])``
(PyTorch's ``conv2d(x, w, stride=(2, 1), padding=(1, 0))``) computes the forward, and the input gradient's
convolution kills the process while XLA compiles it::

    algebraic_simplifier.cc:586] Check failed: computation->Accept(this) is OK (INVALID_ARGUMENT:
    Window dimensions do not match RHS shape: RHS shape: f32[1,3,2,3]
    Window: { dimensions { size: 2 stride: 1 window_dilation: 1 base_dilation: 2 } dimensions { size: 2 ... } }

(the swapped convolution: dy, 3 rows, is now the kernel, and the row window is still the kernel's 2).

JAX computes dx as a convolution of dy with the reversed kernel: window stride 1, ``lhs_dilation`` = the
stride, padding ``(K − 1 − pad_before, H + pad_before − (H_out − 1)·s − 1)`` per axis. XLA's operand swapper
(``SwapConvolutionOperandsIfBeneficial``, in the algebraic simplifier; ``conv_operand_swapper.cc`` upstream)
swaps a convolution's operands when its kernel is larger than its input, and keeps unchanged every axis it
takes for a "group" dimension: window size k, base dilation k, stride k − 1, no padding, no window dilation.
It does not check that the swapped kernel (dy) has k elements on that axis, so the swapped convolution is
invalid and the simplifier's consistency check aborts. For the input gradient, such an axis is one with kernel
2, stride 2, dilation 1, pad before 1 and the last window starting on the last input row (pad after 1 or 2,
H even), and dy has ≠ 2 rows there (H ≥ 4); the swap needs a kernel larger than dy on the other axis
(kernel_w 3 > W_out 2 here). Each control below changes one of these and computes.

The layout, the dtype (float16, bfloat16, float32, float64), the batch and the channel counts do not matter;
``feature_group_count`` > 1 is never swapped. The weight gradient computes.

Usage: python jax_xla_conv_grad_window_check.py   (runs each call in a child process; exit 1 if any aborted)
"""

import json
import subprocess
import sys

CASES = {   # name: (input [N, C, H, W], kernel (kh, kw), stride, padding pairs, dilation)
    "trigger: k (2, 3), s (2, 1), pad rows (1, 1)": ([1, 1, 4, 4], (2, 3), (2, 1), [(1, 1), (0, 0)], (1, 1)),
    "the conform case (NCHW [2, 4, 7, 8], k (5, 2), s 2, d (2, 1), pads [2, 0, 1, 2])":
        ([2, 4, 7, 8], (5, 2), (2, 2), [(2, 0), (1, 2)], (2, 1)),
    "control: stride 1 on the rows": ([1, 1, 4, 4], (2, 3), (1, 1), [(1, 1), (0, 0)], (1, 1)),
    "control: pad rows (0, 1)": ([1, 1, 4, 4], (2, 3), (2, 1), [(0, 1), (0, 0)], (1, 1)),
    "control: pad rows (1, 3)": ([1, 1, 4, 4], (2, 3), (2, 1), [(1, 3), (0, 0)], (1, 1)),
    "control: H 5 (odd)": ([1, 1, 5, 4], (2, 3), (2, 1), [(1, 1), (0, 0)], (1, 1)),
    "control: H 2 (dy has 2 rows)": ([1, 1, 2, 4], (2, 3), (2, 1), [(1, 1), (0, 0)], (1, 1)),
    "control: W 5 (kernel_w 3 = W_out 3)": ([1, 1, 4, 5], (2, 3), (2, 1), [(1, 1), (0, 0)], (1, 1)),
    "control: kernel (3, 3), stride (3, 1)": ([1, 1, 6, 4], (3, 3), (3, 1), [(2, 2), (0, 0)], (1, 1)),
}


def child(name: str) -> None:
    import numpy as np
    import jax
    from jax import lax

    shape, kernel, stride, padding, dilation = CASES[name]
    x = np.ones(shape, np.float32)
    w = np.ones((3, shape[1]) + kernel, np.float32)

    def conv(x):
        return lax.conv_general_dilated(x, w, stride, padding, rhs_dilation=dilation,
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))

    y, pullback = jax.vjp(conv, x)                  # the forward computes
    (dx,) = pullback(np.ones(y.shape, np.float32))  # the input gradient: XLA compiles it here
    print(json.dumps({"y": list(y.shape), "dx": list(dx.shape), "dx_sum": float(dx.sum())}))


def main() -> int:
    import jax
    import jaxlib
    print(f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, {jax.default_backend()}; python {sys.version.split()[0]}")
    aborted = 0
    for name in CASES:
        done = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True)
        if done.returncode == 0:
            print(f"computes  {name}: {done.stdout.strip()}")
            continue
        aborted += 1
        check = next((line.strip() for line in done.stderr.splitlines() if "Check failed" in line
                      or "Window dimensions" in line), done.stderr.strip().splitlines()[-1:])
        print(f"ABORTS    {name}: exit {done.returncode} ({check[:160]})")
    return 1 if aborted else 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        child(sys.argv[1])
    else:
        sys.exit(main())
