"""Token-id inputs, read on the host.

Which arrays are token sequences, named as the user indexes them, and where their 0s lie
(padding is one run of 0s at a row's start or end).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gradguard import batch

__all__ = ["edge_share", "is_tokens", "named_inputs", "runs"]


def named_inputs(model: Any, x: Any) -> list[tuple[str, np.ndarray, Any]]:
    """`x`'s arrays, first rows: each named as the user indexes it, with its symbolic input.

    The symbolic input is the model's (`model.inputs`) that the array feeds, None if unknown.
    """
    symbolic = list(getattr(model, "inputs", None) or [])
    if isinstance(x, Mapping):
        by_name = {getattr(t, "name", None): t for t in symbolic}
        named = [(f"x[{key!r}]", value, by_name.get(key)) for key, value in x.items()]
    elif isinstance(x, (list, tuple)):
        symbolic = symbolic if len(symbolic) == len(x) else [None] * len(x)
        history = [getattr(t, "_keras_history", None) for t in symbolic]
        layers = [getattr(getattr(h, "operation", None), "name", None) for h in history]
        named = [
            (f"x[{i}]" + (f" (input layer {layer!r})" if layer else ""), value, tensor)
            for i, (layer, value, tensor) in enumerate(zip(layers, x, symbolic))
        ]
    else:
        named = [("x", x, symbolic[0] if len(symbolic) == 1 else None)]
    arrays = [(name, batch.head(value), tensor) for name, value, tensor in named]
    return [(name, array, tensor) for name, array, tensor in arrays if array is not None]


def is_tokens(array: np.ndarray) -> bool:
    """Integer ids of more than two values that differ from example to example."""
    if not np.issubdtype(array.dtype, np.integer) or np.all(array == array[:1]):
        return False
    return len(np.unique(array)) > 2


def edge_share(padding: np.ndarray) -> float:
    """The share of the rows with any 0s (`padding`, a mask) whose 0s are one run at an edge."""
    lengths, columns = padding.sum(axis=1), np.arange(padding.shape[1])
    start = (padding == (columns < lengths[:, None])).all(axis=1)
    end = (padding == (columns >= padding.shape[1] - lengths[:, None])).all(axis=1)
    padded = lengths > 0
    return float(np.mean((start | end)[padded])) if padded.any() else 0.0


def runs(zeros: np.ndarray) -> np.ndarray:
    """Per row of `zeros` (a mask), how many runs of consecutive 0s it holds."""
    starts = zeros & ~np.pad(zeros, ((0, 0), (1, 0)))[:, :-1]
    return starts.sum(axis=1)
