#!/usr/bin/env python3
"""Plain TensorFlow (no conform): the filter gradient of a strided 1x1 convolution corrupts the heap.

Finding F10 (docs/findings.md). Measured on tensorflow-cpu 2.21.0, an AVX-512 Xeon (oneDNN picks
``jit_1x1:avx512_core`` for this backward-weights call): the process dies within 300 iterations with
glibc's ``corrupted size vs. prev_size`` / ``free(): invalid next size`` / ``munmap_chunk(): invalid
pointer`` (SIGABRT), a SIGSEGV, or an ``AbortedError: could not create a primitive descriptor for the
reorder primitive`` (presumably a descriptor the overflow overwrote). The damage is silent when it happens: the call
returns, and whatever later frees or reads the overwritten chunk fails.

Three conditions are needed (each control below survives 300 iterations, in 3 processes of 3):

* a 1x1 kernel with stride > 1, and an input of exactly output x stride on both axes (10x12, stride 2 ->
  5x6: the last row and column are read by no window), the shapes for which oneDNN picks
  ``jit_1x1:avx512_core`` (19 shape and stride pairs checked); for others, 9x11 here, it picks
  ``jit:avx512_core``;
* fewer than 16 input channels (the AVX-512 kernel's channel block; 8 fails, 16 survives);
* the AVX-512 kernel: ``ONEDNN_MAX_CPU_ISA=AVX2`` (``jit_1x1:avx2``) survives, as does
  ``TF_ENABLE_ONEDNN_OPTS=0`` (Eigen's kernel, NHWC).

The layout does not matter: NCHW fails too (``tf.raw_ops.Conv2DBackpropFilter``, 3 of 3; oneDNN runs it
as NHWC inside ``jit_uni_ncsp_convolution``).

The same pattern as oneDNN issue uxlfoundation/oneDNN#6035 ("1x1 convolution backward_weights writes past
the rtus workspace (nhwc, IC < ic_block)"): a strided 1x1 backward-weights call first copies the strided
input into a unit-stride workspace ("rtus"), by that issue's account sized for the real channel count
but written in blocks of 16.

Usage: python tf_onednn_1x1_filter_grad.py [ITERATIONS] [H] [CHANNELS]   (defaults 300 10 4)
Exit 0 with "survived" means the bug did not show in this process; it is intermittent per call, so run
it a few times. Diagnose with ONEDNN_VERBOSE=all (the implementation each call uses).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 300
height = int(sys.argv[2]) if len(sys.argv) > 2 else 10
channels = int(sys.argv[3]) if len(sys.argv) > 3 else 4

rng = np.random.default_rng(0)
x = tf.constant(rng.standard_normal((1, height, height + 2, channels)), tf.float32)   # NHWC
filters = tf.constant(rng.standard_normal((1, 1, channels, 3)), tf.float32)           # 1x1, C_in -> 3
for i in range(iterations):
    with tf.GradientTape() as tape:
        tape.watch(filters)
        y = tf.nn.conv2d(x, filters, strides=2, padding="VALID")
    tape.gradient(y, filters).numpy()   # Conv2DBackpropFilter -> oneDNN backward_weights
print(f"survived {iterations} iterations: TensorFlow {tf.__version__}, H={height}, channels={channels}")
