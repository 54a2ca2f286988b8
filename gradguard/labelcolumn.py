"""A label that is one of the inputs' values: the target left among the features.

`labels-in-inputs` for one label an example. A table's target column not dropped from its
features (``x = table.values`` with ``y = table["price"]``), or a forecasting window that holds
its own target (``keras.utils.timeseries_dataset_from_array(series, targets=series, ...)``
pairs each window with the value it starts at): the model reads the answer from its inputs. The
training loss falls to about 0 (a copy is easy to learn) and the model has no skill where the
target is not given (the future, a table without the column): a forecaster trained so had a
next-step error of 0.88 against 0.011 with the targets shifted past the window. Nothing fails.

The fingerprint is exact: labels of one number an example, not all alike within a batch, and
one position of the inputs equal to the label in every example seen, `MIN_EXAMPLES` of them at
least. A feature that predicts the label well is not equal to it in every example; a forecast
of the next value differs from every value of its window; an autoencoder's labels are all its
inputs, not one number an example. Read in-graph on `fit`'s batches (Keras' own train step:
one comparison of the batch's inputs, of at most `MAX_VALUES` numbers an example, with its
labels), judged at reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.findings import Finding

__all__ = ["LabelColumn"]

MIN_EXAMPLES = 256  # examples seen, every one equal, before the column is called the label
MAX_VALUES = 4096  # numbers an example beyond which the inputs are not compared (images)


def _flat(x: Any, y: Any, shape: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor] | None:
    """`x` as [batch, values] and `y` as [batch, 1] in float32; None where this does not apply.

    `shape`: an example's inputs, from the model where the batch's is not known (a data set
    of windows).
    """
    if not (isinstance(x, tf.Tensor) and isinstance(y, tf.Tensor)):
        return None  # (several inputs or labels: a dict, a tuple)
    if x.shape.rank is None or x.shape.rank < 2 or y.shape.rank not in (1, 2):
        return None
    if y.shape.rank == 2 and y.shape[1] != 1:
        return None  # (several numbers an example: a one-hot label, an autoencoder's)
    if not all(t.dtype.is_floating or t.dtype.is_integer for t in (x, y)):
        return None
    if x.shape[1:].is_fully_defined():
        shape = tuple(x.shape[1:])
    values = int(np.prod(shape)) if shape and len(shape) == x.shape.rank - 1 else 0
    if not 2 <= values <= MAX_VALUES:
        return None
    x = tf.reshape(tf.cast(x, tf.float32), [-1, values])
    return x, tf.reshape(tf.cast(y, tf.float32), [-1, 1])


class LabelColumn:
    """`fit`'s batches of a model's inputs against its labels, folded in-graph; judged on host."""

    def __init__(self, model: Any) -> None:
        inputs = getattr(model, "inputs", None) or []  # (a subclassed model has none)
        shape = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else ()
        known = all(isinstance(d, int) for d in shape)
        self._shape: tuple[int, ...] = shape if known else ()  # an example's inputs
        self._equal: tf.Variable | None = None  # per input position: equal to every label so far
        self._seen: tf.Variable | None = None  # [examples, 1 once a batch's labels differed]

    def observe(self, x: Any, y: Any) -> None:
        """In-graph: folds a batch (inputs or labels this does not apply to: nothing)."""
        flat = _flat(x, y, self._shape)
        if flat is None:
            return
        inputs, labels = flat
        if self._equal is None:
            self._shape = self._shape or tuple(x.shape[1:])
            with _compat.outside_trace():
                self._equal = replicas.state_variable(
                    np.ones(inputs.shape[1], np.float32), name="gradguard_label_column"
                )
                self._seen = replicas.state_variable(
                    np.zeros(2, np.float32), name="gradguard_label_column_seen"
                )
        assert self._seen is not None
        if inputs.shape[1] != self._equal.shape[0]:
            return  # (another input shape on a later trace: the first one's is kept)
        same = tf.cast(tf.reduce_all(tf.equal(inputs, labels), axis=0), tf.float32)
        self._equal.assign(self._equal.read_value() * same)
        # (no infinities as start values: check_numerics, when on, would stop the step)
        varied = tf.reduce_any(tf.not_equal(labels, labels[:1]))
        seen = self._seen.read_value()
        count = seen[0] + tf.cast(tf.shape(labels)[0], tf.float32)
        self._seen.assign(tf.stack([count, tf.maximum(seen[1], tf.cast(varied, tf.float32))]))

    def finding(self, step: int) -> Finding | None:
        """`labels-in-inputs` if an input position held every label seen (a host read)."""
        if self._equal is None or self._seen is None:
            return None
        examples, varied = self._seen.numpy()
        positions = np.flatnonzero(self._equal.numpy() > 0.5)
        if examples < MIN_EXAMPLES or not positions.size or not varied:
            return None
        where = tuple(int(i) for i in np.unravel_index(positions[0], self._shape))
        at = f"column {where[0]}" if len(where) == 1 else f"position {list(where)}"
        message = (
            f"The labels equal the model's input at {at} in every one of the {int(examples)} "
            "training examples seen: the target is among the inputs, so the model can copy it, "
            "its training loss falls to about 0, and it has no skill where the target is not "
            "given. A target column left in the features, or a window that holds its own target "
            "(timeseries_dataset_from_array(data, targets=data) pairs each window with the value "
            "it starts at): drop the column from the inputs, or give the targets that follow "
            "each window (targets=data[sequence_length:])."
        )
        details = {"input_position": list(where), "examples": int(examples)}
        return Finding("labels-in-inputs", message, step, details=details)
