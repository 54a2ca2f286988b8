"""Sequences padded at their end, read by a recurrent layer without a mask (a suspect).

``pad_sequences(..., padding="post")`` puts each sequence's zeros after its tokens. A recurrent
layer that returns only its last state (an LSTM feeding a Dense head) and gets no mask (no
``Embedding(mask_zero=True)``, no ``Masking`` layer) reads those zeros last: its final state,
all the next layer sees, has to carry the text across every padding step, and the model may
stay at the chance level. Keras pads at the front by default, which such a layer reads first,
harmlessly; with a mask it skips the padding wherever it is.

Not a finding of its own (short padding, or a model that learns despite it, is fine): when the
loss does not decrease, its message names it with the model's suspect settings
(`suspects.sentence`, ``notes["trailing_padding"]``). Told from the model (`unmasked_rnn`:
Sequential and functional models, whose layers show where a mask would come from) and from its
inputs (`TrailingPadding`: the share of each sequence after its last non-zero step, in-graph
under `fit`, eagerly on `TrainStep`'s first batch).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas

__all__ = ["TrailingPadding", "first_batch_suspect", "unmasked_rnn"]

# The mean share of a sequence after its last non-zero step at or above which it is named: a
# quarter of every sequence read after its content.
TRAILING = 0.25


def unmasked_rnn(model: Any) -> str | None:
    """The name of a recurrent layer of `model` that reads its whole input unmasked, if any.

    One that returns only its last state and reads forward (or a `Bidirectional` one's forward
    half), in a model with no mask: no Embedding with ``mask_zero``, no Masking layer. None
    for a subclassed model, which may pass a mask in its own ``call``.
    """
    if not getattr(model, "inputs", None):  # a subclassed model has no symbolic inputs
        return None
    layers = _compat.flatten_layers(model)
    if any(isinstance(layer, keras.layers.Masking) or _masks(layer) for layer in layers):
        return None
    for layer in layers:
        rnn = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        if isinstance(rnn, keras.layers.RNN) and not rnn.return_sequences and not rnn.go_backwards:
            return str(layer.name)
    return None


def first_batch_suspect(model: Any, x: Any) -> str | None:
    """`TrailingPadding.suspect` of one batch `x` (eagerly), if `model` reads it unmasked."""
    layer = unmasked_rnn(model)
    counted = _trailing(x) if layer is not None else None
    if layer is None or counted is None:
        return None
    return _phrase(layer, *(float(v) for v in counted))


def _masks(layer: Any) -> bool:
    return isinstance(layer, keras.layers.Embedding) and bool(getattr(layer, "mask_zero", False))


def _trailing(x: Any) -> tuple[tf.Tensor, tf.Tensor] | None:
    """A batch's sequences and the sum of their shares after the last non-zero step.

    Sequences are ``[batch, time]`` (token ids) or ``[batch, time, features]`` (a step is
    padding when all of its features are 0); None for other inputs.
    """
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.number):
        x = tf.convert_to_tensor(x)
    if not isinstance(x, tf.Tensor) or len(x.shape) not in (2, 3):
        return None
    if not (x.dtype.is_integer or x.dtype.is_floating):  # (strings a layer vectorizes)
        return None
    steps = tf.not_equal(x, tf.zeros([], x.dtype))
    if len(x.shape) == 3:
        steps = tf.reduce_any(steps, axis=2)
    steps = tf.cast(steps, tf.int32)
    # Zeros after the last non-zero step (a sequence of zeros only counts as none).
    after = tf.argmax(tf.reverse(steps, [1]), axis=1, output_type=tf.int32)
    length = tf.cast(tf.maximum(tf.shape(steps)[1], 1), tf.float32)
    share = tf.cast(after, tf.float32) / length
    return tf.cast(tf.shape(steps)[0], tf.float32), tf.reduce_sum(share)


def _phrase(layer: str, rows: float, total: float) -> str | None:
    share = total / rows if rows else 0.0
    if share < TRAILING:
        return None
    return (
        f"{layer!r} reads its sequences without a mask, and they end in padding: on average "
        f"{share:.0%} of each one comes after its last non-zero step "
        "(pad_sequences(padding='post')), so its final state, all the next layer sees, has "
        "read that padding since the content; pass mask_zero=True to the Embedding (or add a "
        "Masking layer), or pad with padding='pre'"
    )


class TrailingPadding:
    """The share of each input sequence after its last non-zero step, over `fit`'s batches.

    Args:
      layer: The recurrent layer's name (`unmasked_rnn`), for the message.
    """

    def __init__(self, layer: str):
        self.layer = layer
        self._state: tf.Variable | None = None  # [sequences seen, their shares' sum]

    @classmethod
    def of(cls, model: Any) -> TrailingPadding | None:
        """One for `model`'s recurrent layer if it reads its inputs unmasked (`unmasked_rnn`)."""
        layer = unmasked_rnn(model)
        return None if layer is None else cls(layer)

    def observe(self, x: Any) -> None:
        """In-graph: folds a batch of the model's inputs (other inputs than `_trailing`'s: none)."""
        counted = _trailing(x)
        if counted is None:
            return
        if self._state is None:
            with _compat.outside_trace():
                self._state = replicas.state_variable(
                    np.zeros(2, np.float32), name="gradguard_trailing_padding"
                )
        self._state.assign_add(tf.stack(counted))

    def suspect(self) -> str | None:
        """The phrase for `suspects.sentence`, if the sequences end in padding (a host read)."""
        if self._state is None:
            return None
        return _phrase(self.layer, *(float(v) for v in self._state.numpy()))
