"""The conv2d operator (forward 2-D convolution): one package, not yet registered.

``semantics`` (parameters, validity, padding, shapes, memory estimate, derived
values), ``oracle`` (the independent float64 reference) and ``numba_kernel``
(the fast kernel of the ``numba`` backend). They are wired into the operator
registry (``harness/ops/__init__.py``) together with the adapters.
"""
