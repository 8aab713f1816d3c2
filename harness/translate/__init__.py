"""``conform translate``: a call in one API as the call in another that computes the same function.

Note [Translation]
------------------
A translation is right by construction when it goes through the canonical semantics, never from one
vocabulary to another directly: the source call (``parse``: a call string read with ``ast``, literals
only, or the parameters as a mapping) means a canonical case (the source adapter's ``from_native``), the
target adapter builds its ``Program`` for that case (the very program ``conform run`` would run for it),
and the target's native parameters are read back from that program (``to_native``). When those
parameters alone mean the same function again (``from_native`` of them resolves to the same crops, sizes
and layout), the call is the translation; where the target has no native form for part of it (torch's
asymmetric crop, Keras' explicit padding), the program's other steps are, and its notes say why
(``core``). A target that cannot express the call at all says so (``Unsupported``, exit 1).

Before printing, both calls run natively (``verify``): an in-memory claim, the source's native call
against the translated one, over a sweep of input sizes around the given one, run and judged by
``harness.claims`` in the normal workers and environments. ``render`` prints both calls, what they mean,
the program's code where it is needed, and ``verified on N shapes`` or the first breaking point (exit 1).
Bad input (an unparseable call, an unknown parameter, surface or operator) is exit 2 with the parameter
named (``command``).
"""
