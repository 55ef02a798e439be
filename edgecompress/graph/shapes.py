"""Shape arithmetic for convolutions (output length per axis), shared by accounting and the methods."""
from __future__ import annotations

import math
from typing import Sequence


def conv_out_len(length: int | None, kernel: int, stride: int, dilation: int, padding: str) -> int | None:
    """Output length of one spatial axis, as TensorFlow computes it for 'same' and 'valid'."""
    if length is None:
        return None
    if padding == "same":
        return math.ceil(length / stride)
    span = (kernel - 1) * dilation + 1
    return max(0, (length - span) // stride + 1)


def conv_out_shape(
    spatial: Sequence[int | None],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int],
    padding: str,
) -> tuple[int | None, ...]:
    return tuple(
        conv_out_len(n, k, s, d, padding) for n, k, s, d in zip(spatial, kernel, strides, dilation)
    )


def prod(values: Sequence[int | None]) -> int:
    """Product of known dims; an unknown (None) dim counts as 1, so costs are per known position."""
    return math.prod(v for v in values if v is not None)
