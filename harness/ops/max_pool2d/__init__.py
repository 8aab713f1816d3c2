"""The ``max_pool2d`` operator: ``semantics`` (case fields, validity, windows, dilation;
Note [Max pooling]) and ``oracle`` (float64, from the definition, sharing nothing with the
semantics). The window rules common to both pooling operators live in ``harness.ops.pooling``.
Nothing is imported here, so loading the oracle loads no semantics.
"""
