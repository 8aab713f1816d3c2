"""Reference implementations, one module per operator.

Each oracle is written from the operator's definition alone and shares no
helper with ``harness.ops`` or the adapters: a reference that reuses the code
under test cannot catch that code's bugs. The comparator cross-checks the
oracle's output shape against ``harness.ops`` on every case.
"""

from harness.oracle import conv2d_transpose

ORACLES = {"conv2d_transpose": conv2d_transpose.reference}
