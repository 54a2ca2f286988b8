"""Token-id inputs, read on the host.

Which arrays are token sequences, named as the user indexes them, and where their 0s lie
(padding is one run of 0s at a row's start or end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradguard import _compat, batch

__all__ = [
    "edge_share",
    "fed_layers",
    "is_tokens",
    "label_tokens",
    "named_inputs",
    "next_tokens",
    "one_hot_ids",
    "rows_with",
    "runs",
]

MIN_POSITIONS = 64  # non-padding positions to see before judging
SHIFTED = 0.9  # share of an input's tokens, one step later, equal to the labels: next tokens


def label_tokens(y: Any) -> np.ndarray | None:
    """`y`'s first rows as one token label per position, (rows, positions); None if not so."""
    labels = batch.head(y)
    if labels is not None and labels.ndim == 3 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels is None or labels.ndim != 2 or labels.shape[1] < 2 or not _integral(labels):
        return None
    return labels


def next_tokens(tokens: np.ndarray, labels: np.ndarray) -> bool:
    """Whether `labels` are `tokens`' next ones (a language model's, a shifted decoder input's).

    At `SHIFTED` or more of `MIN_POSITIONS` or more positions whose next token is not 0.
    """
    later = tokens[:, 1:] != 0
    same = tokens[:, 1:][later] == labels[:, :-1][later]
    return same.size >= MIN_POSITIONS and float(np.mean(same)) >= SHIFTED


def _integral(array: np.ndarray) -> bool:
    if np.issubdtype(array.dtype, np.integer):
        return True
    return bool(np.issubdtype(array.dtype, np.floating) and np.all(np.round(array) == array))


def named_inputs(model: Any, x: Any, spread: bool = False) -> list[tuple[str, np.ndarray, Any]]:
    """`x`'s arrays, first rows: each named as the user indexes it, with its symbolic input.

    The symbolic input is the model's (`model.inputs`) that the array feeds, None if unknown.
    `spread`: rows spread over each array instead (`batch.spread`), for data stored in order.
    """
    symbolic = list(getattr(model, "inputs", None) or [])
    if isinstance(x, Mapping):
        by_name = {getattr(t, "name", None): t for t in symbolic}
        named = [(_keyed(key), value, by_name.get(key)) for key, value in x.items()]
    elif isinstance(x, (list, tuple)):
        symbolic = symbolic if len(symbolic) == len(x) else [None] * len(x)
        history = [getattr(t, "_keras_history", None) for t in symbolic]
        layers = [getattr(getattr(h, "operation", None), "name", None) for h in history]
        named = [
            (_keyed(i) + (f" (input layer {layer!r})" if layer else ""), value, tensor)
            for i, (layer, value, tensor) in enumerate(zip(layers, x, symbolic))
        ]
    else:
        named = [("x", x, symbolic[0] if len(symbolic) == 1 else None)]
    rows = batch.spread if spread else batch.head
    arrays = [(name, rows(value), tensor) for name, value, tensor in named]
    return [(name, array, tensor) for name, array, tensor in arrays if array is not None]


def fed_layers(
    model: Any, x: Any, wanted: Callable[[Any], bool], spread: bool = False
) -> list[tuple[Any, str, Any]]:
    """The `wanted` layers of `model` fed straight by an array of `x`: ``(layer, name, array)``.

    Each array's rows as `named_inputs` reads them (`spread` over it, or its first), named as
    it names them; a layer called on several of the model's inputs comes once per input.
    """
    layers: dict[int, list[Any]] = {}
    for layer in _compat.flatten_layers(model):
        if wanted(layer):
            for tensor in _inputs_of(layer):
                layers.setdefault(id(tensor), []).append(layer)
    return [
        (layer, name, array)
        for name, array, tensor in named_inputs(model, x, spread)
        for layer in layers.get(id(tensor), [])
    ]


def _inputs_of(layer: Any) -> list[Any]:
    """The symbolic tensors `layer` was called on (each call of a shared layer's)."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    return [t for node in nodes for t in getattr(node, "input_tensors", ())]


def rows_with(x: Any, name: str, tokens: np.ndarray) -> Any:
    """`x`'s first rows, with `tokens` for the input `name` (as `named_inputs` names it).

    None if an input is not an array.
    """

    def rows(value: Any, this: bool) -> Any:
        head = tokens if this else batch.head(value)
        return None if head is None else head[: len(tokens)]

    if isinstance(x, Mapping):
        given = {k: rows(v, name == _keyed(k)) for k, v in x.items()}
        return None if any(v is None for v in given.values()) else given
    if isinstance(x, (list, tuple)):
        listed = [rows(v, name.split(" ")[0] == _keyed(i)) for i, v in enumerate(x)]
        return None if any(v is None for v in listed) else listed
    return tokens


def _keyed(key: Any) -> str:
    """An input named as the user indexes `x`: ``x['ids']``, ``x[1]``."""
    return f"x[{key!r}]"


def one_hot_ids(array: np.ndarray) -> np.ndarray:
    """One-hot token sequences (rows, positions, vocabulary) as ids from 1, 0 where all 0.

    A character model's inputs and labels are often one-hot rather than ids; shifted by one,
    an all-zero position (padding) keeps the id 0. Other arrays are returned as they are.
    """
    if array.ndim != 3 or array.shape[-1] <= 2:
        return array
    sums = array.sum(axis=-1)
    if not (np.all((array == 0) | (array == 1)) and np.all(sums <= 1) and sums.any()):
        return array
    return np.where(sums == 1, np.argmax(array, axis=-1) + 1, 0)


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
