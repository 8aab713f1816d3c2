"""``tape_vjp``: TensorFlow's reverse-mode autodiff (``tf.GradientTape``) as a functional vjp, the form
``autodiff.tape_backward`` builds backward programs from (Note [Gradients] in ``autodiff.py``).

This module imports nothing from conform, and ``tape_vjp`` imports TensorFlow itself: a reproducer embeds its
source (``Import(..., names=("tape_vjp",))``) and runs without conform.
"""

from __future__ import annotations


def tape_vjp(forward, *primals, sources=None):
    """``(y, pullback)``: ``y = forward(*primals)`` recorded on a ``tf.GradientTape`` that watches ``primals``
    and ``sources`` (default: the primals; a Keras layer's kernel Variable is a source, not an argument), and
    ``pullback(dy)``, the list of ``tape.gradient(y, sources, output_gradients=dy)``. The tape is a context
    manager, so a forward that raises leaves no tape recording. A source the output does not depend on has
    no gradient (``tape.gradient`` gives None): ``pullback`` raises, rather than calling it zero."""
    import tensorflow as tf

    sources = list(primals if sources is None else sources)
    with tf.GradientTape() as tape:
        for value in (*primals, *sources):
            inner = getattr(value, "value", None)   # a Keras 3 Variable wraps its tf.Variable as ``.value``
            tape.watch(inner if isinstance(inner, tf.Variable) else value)
        y = forward(*primals)

    def pullback(dy):
        grads = tape.gradient(y, sources, output_gradients=dy)
        missing = [i for i, g in enumerate(grads) if g is None]
        if missing:
            raise ValueError(f"tf.GradientTape gave no gradient for sources {missing}: the output does not "
                             "depend on them")
        return grads

    return y, pullback
