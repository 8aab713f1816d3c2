"""Canonical spellings of one call: the other ways a case file could write the function the source means.

``padding=1`` with kernel 4 and stride 2 (torch) and ``padding='same'`` (Keras) are different canonical
fields with one meaning: the same crops, sizes and layout once resolved (crops taken as kept,
``harness.claims.words.kept``). An adapter poses the spelling it is given, natively where its API has that
form and by emulation where not (Keras has no explicit padding: a ``Cropping2D`` layer), so the translator
offers the target every spelling of the source's meaning and keeps the one it poses best (``core``): the
source's own first, then ``same``/``valid``/``same_lower``, the resolved explicit padding, with and
without an ``output_shape``, every ``output_padding`` below the stride and Keras' size rule, whichever
of these the operator has. Each is checked by resolving it: only spellings that mean the same call are
offered.
"""

from __future__ import annotations

import itertools

from harness.claims import words

MODES = ("same", "valid", "same_lower")
MAX_OUTPUT_PADDINGS = 64     # stride_h·stride_w choices, for strides up to 8


def alternatives(fields: dict, resolved: dict) -> list[dict]:
    """Candidate fields in the order preferred: the source's own spelling first (not yet checked)."""
    explicit = resolved.get("crops") or resolved.get("pads")
    paddings = [fields["padding"], *MODES] + ([list(explicit)] if explicit is not None else [])
    variants: dict[str, list] = {"padding": paddings}
    if "output_padding" in fields:
        sh, sw = fields["stride"]
        # Lazily: a stride of 100000 must not build its 10¹⁰ pairs to keep 64 of them.
        pairs = [[a, b] for a, b in itertools.islice(itertools.product(range(sh), range(sw)), MAX_OUTPUT_PADDINGS)]
        variants["output_padding"] = [fields["output_padding"], [0, 0], *pairs]
    if fields.get("output_shape") is not None:
        variants["output_shape"] = [fields["output_shape"], None]
    if "size_rule" in fields or "output_padding" in fields:
        variants["size_rule"] = [fields.get("size_rule", "tensorflow"), "tensorflow", "keras"]
    names = list(variants)
    out, seen = [], set()
    for combo in itertools.product(*(variants[n] for n in names)):
        candidate = {**fields, **dict(zip(names, combo))}
        if candidate.get("size_rule") == "tensorflow":
            candidate.pop("size_rule")        # the default, as from_native writes it
        key = repr(sorted(candidate.items()))
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


def same_meaning(a: dict, b: dict) -> bool:
    """Two resolved calls compute the same function (crops as kept; every size, stride and layout equal)."""
    return words.kept(a) == words.kept(b)
