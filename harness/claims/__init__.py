"""Claims: "this call in framework A is that call in framework B", checked by running both natively.

Note [Claims]
-------------
A case states a call once, canonically, and conform translates it to every
surface itself, so it checks conform's translations. A *claim* states the
call several times, each in one surface's own vocabulary (``tf.keras``:
``{filters: 16, kernel_size: 3, strides: 2, padding: same, output_padding:
1}``, ``torch.nn``: ``{..., padding: 1, output_padding: 1}``), which is what a
person porting a model writes, and asks whether those calls compute the same
function.

* ``model`` is the file format (README "Claim files"): pydantic models over
  the line-keeping YAML loader, a sweep expanded into points, ``=expr``
  values computed from the sweep's variables.
* ``load`` gives every side of every point its canonical meaning through the
  adapter's inverse mapping (``Backend.from_native``), builds one ``Case``
  per side from it, and checks that the adapter's Program poses exactly the
  claim's native parameters (``Backend.to_native``): a claim about
  ``pad_mode='valid'`` must never be checked through an emulation of it.
  Every problem is ``file:line: field: message``.
* ``run`` generates the operands once per point (the canonical NCHW input,
  transposed for a side whose layout is NHWC; weights in canonical form, which
  each adapter converts as for any case), runs every side in its worker and
  judges side against side (``judge``): same shape, values within the sum of
  both sides' error bounds (each from the float64 oracle of that side's own
  canonical meaning, ``harness.compare``), same error behaviour.
* ``words`` says what each side means (crops, pads, output size) and which
  registry entry explains a side that departs from its own canonical meaning;
  ``repro`` writes a script that calls every side natively and prints the
  difference.

A claim *holds* when every point passes; it *breaks* at its first failing
point. ``expect: breaks`` (with a ``reason``, optionally the registry entries
that must explain it) turns an expected break into ``xfail`` points; a claim
expected to break that holds fails the gate, like ``xpass`` with ``--strict``.
"""
