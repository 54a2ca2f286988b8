"""Labels of one token each, against the model's token inputs: copied, or padded elsewhere.

* `labels-in-inputs`: teacher forcing feeds a decoder the target sequence shifted right by one
  step (``decoder_input = [<start>] + target[:-1]``), so that at each position it predicts the
  next token from the ones before. Without the shift (``decoder_input = target``) the label at
  each position is already in the input there: the model learns to copy it, the training loss
  falls to about 0 and the accuracy to 1, and inference, fed the model's own tokens, fails.
  Taken: two or more token sequence inputs of the labels' shape (integer ids of more than two
  values, not the same in every example: not masks, segment or position ids), one of them
  equal to the labels at 99% or more of the positions where either is not 0 (padding), and none
  whose tokens (not 0), one step later, are the labels at 90% or more (a shifted input). With a
  shifted input the labels may equal the encoder's (a copy task, learned through the encoder's
  summary); with one input (an autoencoder, or a model that masks its tokens itself next to a
  padding mask) the labels are the input by design, and so they are with an input that reaches
  the output only through a summary (a bottleneck autoencoder with segment ids beside it).
* `padding-misaligned`: `keras.utils.pad_sequences` pads at the start by default
  (``padding="pre"``). Tokens padded that way and their tags with ``padding="post"`` (or the
  reverse) put each tag at another token's position, shifted by the sentence's length: the loss
  still falls (the model learns where the padding is) while the tags of real tokens are near
  chance. Taken: one token sequence input of the labels' shape, whose 0s are padding (in 95% of
  the rows that have any, a run at the start or at the end), through a model that keeps the
  positions (no recurrent layer returning its last state only, no `RepeatVector`, global
  pooling or `Flatten`: an encoder-decoder's labels need not line up with its input); where
  the input is padding the labels are one value (the padding tag) at 99% or more, or not.
  Labels that are the input's next tokens (a language model's: ``x = seq[:, :-1], y = seq[:,
  1:]``) are padded alike, whatever the one label at the padding's end.

Told once from the data on the host: `TrainStep`'s first batch, or `fit`'s arrays under
``gradguard run`` (or those a data set only slices and batches: `batch.sliced`) for a model
trained by Keras' own `train_step` (an override may shift or pad the labels itself). Not under
`GuardCallback` alone, nor for data `fit` draws otherwise (a generator, a mapped data set).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, batch
from gradguard import tokens as tokens_lib
from gradguard.findings import Finding

__all__ = ["findings"]

MIN_POSITIONS = tokens_lib.MIN_POSITIONS  # non-padding positions to see before judging
SAME = 0.99  # share of positions equal to the labels: the input holds them
MIN_PADDING = 32  # padding positions to see before judging where the labels' padding is
EDGE = 0.95  # share of the rows with 0s whose 0s are one run at the start or the end: padding
CONSTANT = 0.99  # share of the labels at the inputs' padding that one padding tag takes
# Layers after which the output's positions are not the input's (an encoder's summary).
_SUMMARIZING = (
    keras.layers.RepeatVector,
    keras.layers.Flatten,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalMaxPooling1D,
)


def findings(model: Any, x: Any, y: Any, step: int) -> list[Finding]:
    """`labels-in-inputs` and `padding-misaligned` for labels `y` of inputs `x`.

    `x` and `y`: a batch, or `fit`'s arrays (their first rows are read).
    """
    first = batch.head(y)
    labels = tokens_lib.label_tokens(first if first is None else tokens_lib.one_hot_ids(first))
    if labels is None:
        return []
    given = [(n, tokens_lib.one_hot_ids(a), t) for n, a, t in tokens_lib.named_inputs(model, x)]
    named = [(n, a, t) for n, a, t in given if a.shape == labels.shape and tokens_lib.is_tokens(a)]
    inputs = [(name, array) for name, array, _ in named]
    # A label can be copied from an input only where its positions reach the output.
    positional = _positional_inputs(model)
    reaching = [(n, a) for n, a, t in named if positional is None or _layer(t) in positional]
    copied = _copied(inputs, reaching, labels, step)
    found = [copied, _misaligned(model, inputs, labels, step)]
    return [finding for finding in found if finding is not None]


def _summarizes(layer: Any) -> bool:
    """Whether `layer`'s output keeps none of its input's positions (an encoder's summary)."""
    return isinstance(layer, _SUMMARIZING) or getattr(layer, "return_sequences", True) is False


def _layer(tensor: Any) -> int:
    """The id of the layer that made a symbolic `tensor` (None's when unknown: no input)."""
    return id(getattr(getattr(tensor, "_keras_history", None), "operation", None))


def _positional_inputs(model: Any) -> set[int] | None:
    """Ids of a functional model's input layers whose positions reach its output.

    Through a path of no `_summarizes` layer; None for a model of no known graph.
    """
    stack = list(tf.nest.flatten(getattr(model, "outputs", None) or []))
    if not stack:
        return None
    seen, found = set(), set()
    while stack:
        history = getattr(stack.pop(), "_keras_history", None)
        if history is None or (id(history.operation), history.node_index) in seen:
            continue
        seen.add((id(history.operation), history.node_index))
        if _summarizes(history.operation):
            continue
        node = history.operation._inbound_nodes[history.node_index]
        if not node.input_tensors:
            found.add(id(history.operation))  # (an input layer)
        stack.extend(node.input_tensors)
    return found


def _copied(
    inputs: list[tuple[str, np.ndarray]],
    reaching: list[tuple[str, np.ndarray]],
    labels: np.ndarray,
    step: int,
) -> Finding | None:
    """`labels-in-inputs`: of `inputs`, one of those `reaching` the output by position."""
    if len(inputs) < 2:  # (one: an autoencoder; masks, segment and position ids are no tokens)
        return None
    if any(tokens_lib.next_tokens(array, labels) for _, array in inputs):
        return None  # (a shifted input: healthy teacher forcing)
    for name, array in reaching:
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


def _misaligned(
    model: Any, inputs: list[tuple[str, np.ndarray]], labels: np.ndarray, step: int
) -> Finding | None:
    if len(inputs) != 1 or any(_summarizes(layer) for layer in _compat.flatten_layers(model)):
        return None
    name, tokens = inputs[0]
    if tokens_lib.next_tokens(tokens, labels):
        return None  # (a language model's labels, padded alike)
    padding = tokens == 0
    count = int(padding.sum())
    lengths = padding.sum(axis=1)  # (alike in every row: a start token numbered 0, not padding)
    if count < MIN_PADDING or count == padding.size or np.all(lengths == lengths[0]):
        return None
    if tokens_lib.edge_share(padding) < EDGE:
        return None
    values, counts = np.unique(labels[padding], return_counts=True)
    if counts.max() >= CONSTANT * count:
        return None
    side = "start" if padding[:, 0].sum() >= padding[:, -1].sum() else "end"
    tag = values[counts.argmax()]
    other = 1.0 - counts.max() / count
    return Finding(
        "padding-misaligned",
        f"Where the input {name} is padding (0, at the {side} of its rows: {count} positions), "
        f"the labels are not one padding tag: {other:.0%} of them differ from the most common "
        f"({tag:g}), so the labels are padded elsewhere than the tokens and each tag sits at "
        "another token's position. keras.utils.pad_sequences pads at the start by default "
        "(padding='pre'): pad the inputs and the labels the same way.",
        step,
        details={"input": name, "side": side, "other": other, "positions": count},
    )


def _share(inputs: np.ndarray, labels: np.ndarray, positions: np.ndarray) -> tuple[float, int]:
    """The share of `positions` (a mask) at which `inputs` equal `labels`, and their count."""
    count = int(positions.sum())
    return (float(np.mean(inputs[positions] == labels[positions])) if count else 0.0), count
