"""Labels that are one of the model's own inputs, position by position (`labels-in-inputs`).

Teacher forcing feeds a decoder the target sequence shifted right by one step
(``decoder_input = [<start>] + target[:-1]``), so that at each position it predicts the next
token from the ones before. Without the shift (``decoder_input = target``) the label at each
position is already in the input at that position: the model learns to copy it, the training
loss falls to about 0 and the accuracy to 1, and inference, fed the model's own tokens, fails.

Told once from the data on the host: `TrainStep`'s first batch, or `fit`'s arrays under
``gradguard run``. It takes two or more token sequence inputs of the labels' shape (integer
ids of more than two values, not the same in every example: not masks, segment or position
ids), one of them equal to the labels at 99% or more of the positions where either is not 0
(padding), and none whose tokens (not 0), one step later, are the labels at 90% or more (a
shifted input). With a shifted input the labels may equal the encoder's (a copy task, learned
through the encoder's summary); with one input (an autoencoder, or a model that masks its
tokens itself next to a padding mask) the labels are the input by design. Not under
`GuardCallback` alone, nor for data `fit` draws batches from (a data set, a generator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gradguard import batch
from gradguard.findings import Finding

__all__ = ["finding"]

MIN_POSITIONS = 64  # non-padding positions to see before judging
SAME = 0.99  # share of positions equal to the labels: the input holds them
SHIFTED = 0.9  # share equal to the labels one step earlier: healthy teacher forcing


def finding(model: Any, x: Any, y: Any, step: int) -> Finding | None:
    """`labels-in-inputs` if labels `y` are one of inputs `x` (a batch, or `fit`'s arrays)."""
    labels = batch.head(y)
    if labels is not None and labels.ndim == 3 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels is None or labels.ndim != 2 or labels.shape[1] < 2 or not _integral(labels):
        return None
    inputs = [
        (name, array)
        for name, array in _named_inputs(model, x)
        if array.shape == labels.shape and _tokens(array)
    ]
    if len(inputs) < 2:  # (one: an autoencoder; masks, segment and position ids are no tokens)
        return None
    for _, array in inputs:  # each of its tokens, one step later, is the label before it?
        share, positions = _share(array[:, 1:], labels[:, :-1], array[:, 1:] != 0)
        if share >= SHIFTED and positions >= MIN_POSITIONS:
            return None
    for name, array in inputs:
        share, positions = _share(array, labels, (array != 0) | (labels != 0))
        if share >= SAME and positions >= MIN_POSITIONS:
            return Finding(
                "labels-in-inputs",
                f"The labels are the model's input {name} itself, position by position "
                f"({share:.0%} of {positions} non-padding positions equal): the model can "
                "copy each label from its input, so the training loss falls to about 0 while "
                "inference, fed its own earlier outputs, fails. For teacher forcing, feed the "
                "target shifted right by one step: decoder input = [<start>] + target[:-1], "
                "labels = target.",
                step,
                details={"input": name, "share": share, "positions": positions},
            )
    return None


def _share(inputs: np.ndarray, labels: np.ndarray, positions: np.ndarray) -> tuple[float, int]:
    """The share of `positions` (a mask) at which `inputs` equal `labels`, and their count."""
    count = int(positions.sum())
    return (float(np.mean(inputs[positions] == labels[positions])) if count else 0.0), count


def _named_inputs(model: Any, x: Any) -> list[tuple[str, np.ndarray]]:
    """`x`'s arrays, first rows, each named as the user indexes it (with its input layer's)."""
    if isinstance(x, Mapping):
        named = [(f"x[{key!r}]", value) for key, value in x.items()]
    elif isinstance(x, (list, tuple)):
        tensors = getattr(model, "inputs", None) or []
        history = [getattr(t, "_keras_history", None) for t in tensors]
        layers = [getattr(getattr(h, "operation", None), "name", None) for h in history]
        layers = layers if len(layers) == len(x) else [None] * len(x)
        named = [
            (f"x[{i}]" + (f" (input layer {layer!r})" if layer else ""), value)
            for i, (layer, value) in enumerate(zip(layers, x))
        ]
    else:
        return []
    arrays = [(name, batch.head(value)) for name, value in named]
    return [(name, array) for name, array in arrays if array is not None]


def _tokens(array: np.ndarray) -> bool:
    """Integer ids of more than two values that differ from example to example."""
    if not np.issubdtype(array.dtype, np.integer) or np.all(array == array[:1]):
        return False
    return len(np.unique(array)) > 2


def _integral(array: np.ndarray) -> bool:
    if np.issubdtype(array.dtype, np.integer):
        return True
    return bool(np.issubdtype(array.dtype, np.floating) and np.all(np.round(array) == array))
