"""Case fields that several 2-D operators share: pairs, the input shape, padding forms, layouts.

Each operator's ``Params`` still declares its own fields (its case format is
its own); what is the same everywhere — an int-or-pair field, the ``input``
dimensions, the ``same | same_lower | valid | int | [top, bottom, left, right]`` padding
forms and the NCHW/NHWC reading of ``input`` — is validated and read here, once. The oracles import
nothing from this module: they resolve their parameters independently.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal, Union

Pair = Union[int, list[int]]
LIMIT = 1 << 20       # beyond this a size is a mistake, not a test

#: The named padding forms every 2-D operator takes. ``same``: TensorFlow's rule, an odd total padding puts
#: the extra row/column at the bottom/right (ONNX ``SAME_UPPER``); ``same_lower``: the same total, the extra
#: one at the top/left (ONNX ``SAME_LOWER``); ``valid``: none. Each operator's Note says what they resolve to.
PaddingMode = Literal["same", "same_lower", "valid"]
Padding = Union[PaddingMode, int, list[int]]


def split_total(total: int, form: str) -> tuple[int, int]:
    """A total padding (or crop) split into (before, after): the odd one after for ``same``, before for
    ``same_lower`` (ONNX's SAME_UPPER / SAME_LOWER)."""
    small = total // 2
    return (total - small, small) if form == "same_lower" else (small, total - small)


def pair(value, minimum: int) -> list[int]:
    """An int or a list of 2 ints, each in [minimum, LIMIT], as a list of 2 ints."""
    if isinstance(value, bool):
        raise ValueError(f"expected an int or a list of 2 ints, got {value!r}")
    values = [value, value] if isinstance(value, int) else list(value)
    if len(values) != 2:
        raise ValueError(f"expected an int or a list of 2 ints, got {len(values)} values")
    for v in values:
        if v < minimum:
            raise ValueError(f"must be ≥ {minimum}, got {v}")
        if v > LIMIT:
            raise ValueError(f"{v} is absurdly large (limit {LIMIT})")
    return values


def input_dims(v: list[int]) -> list[int]:
    """``input``: batch ≥ 0, channels/height/width ≥ 1, none absurdly large."""
    if v[0] < 0 or min(v[1:]) < 1:
        raise ValueError(f"batch must be ≥ 0 and channels/height/width ≥ 1, got {v}")
    if max(v) > LIMIT:
        raise ValueError(f"{v} has an absurdly large dimension (limit {LIMIT})")
    return v


def padding_form(v):
    """``padding``: 'same' / 'same_lower' / 'valid' as is; an int or [top, bottom, left, right] as 4 ints ≥ 0."""
    if isinstance(v, str):
        return v
    values = [v] * 4 if isinstance(v, int) else list(v)
    if len(values) != 4:
        raise ValueError(f"explicit padding is an int or [top, bottom, left, right], got {len(values)} values")
    if min(values) < 0:
        raise ValueError(f"padding must be ≥ 0, got {values}")
    if max(values) > LIMIT:
        raise ValueError(f"padding {values} is absurdly large (limit {LIMIT})")
    return values


def nchw(params) -> tuple[int, int, int, int]:
    """``params.input`` as (N, C, H, W), whatever its ``layout``."""
    n, a, b, c = params.input
    return (n, c, a, b) if params.layout == "NHWC" else (n, a, b, c)



class ConvResolved:
    """What a resolved 2-D convolution (forward or transposed) derives from its fields; a mixin for
    each operator's frozen ``Resolved`` dataclass, which declares ``batch``, ``in_channels``,
    ``out_channels``, ``kernel``, ``groups``, ``out_hw`` and ``layout``."""

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The output shape in the case's layout."""
        n, c, (h, w) = self.batch, self.out_channels, self.out_hw
        return (n, h, w, c) if self.layout == "NHWC" else (n, c, h, w)

    @property
    def accumulation_length(self) -> int:
        """Products summed into one output element at most: C_in/groups·kh·kw."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]

    def as_dict(self) -> dict:
        return asdict(self)
