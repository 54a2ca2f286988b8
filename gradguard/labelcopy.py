"""A regression's label that is one of its own inputs (`labels-in-inputs`).

A forecast's windows built one step off put the target inside the window: with
``keras.utils.timeseries_dataset_from_array(series[:-T], targets=series, ...)`` the target of
the window starting at ``i`` is ``series[i]``, the window's own first value, where
``targets=series[T:]`` (the value after the window) was meant; ``x = series[i:i + T + 1]``
with ``y = series[i + T]`` puts it last. The model learns to copy one input, its training loss
falls to nothing, and it has learned no forecast (held-out R² -0.29 against 0.78). A target
column left among the features is the same leak.

Folded in-graph from `fit`'s batches (`fit_batches`) for a regression loss (mean squared or
absolute error) with one label per example: for each input position, whether it equals the
label in every example, over the batches whose labels vary; judged at reads, once `BATCHES`
such batches are seen. Inputs of several tensors, labels of several values per example (an
autoencoder's) and classification losses are not read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, baseline, replicas
from gradguard.findings import Finding

__all__ = ["LabelCopies"]

BATCHES = 3  # batches whose labels vary, all with the label equal to the same input position
_REGRESSION = (baseline.MSE, baseline.MAE)


class LabelCopies:
    """Per input position, whether every example's label has equalled it (in-graph)."""

    def __init__(self, positions: int):
        self.positions = positions
        self._state: tf.Variable | None = None  # per position: still equal (1/0); then batches
        self._told = False

    @staticmethod
    def of(model: Any) -> LabelCopies | None:
        """A fold for `model` if it is a regression of one value per example, on one input."""
        kind = baseline.kind_of(getattr(model, "loss", None))
        inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
        if kind is None or kind.name not in _REGRESSION or not inputs or not outputs:
            return None
        if len(inputs) != 1 or len(outputs) != 1 or outputs[0].shape[-1] != 1:
            return None
        positions = int(np.prod(inputs[0].shape[1:])) if None not in inputs[0].shape[1:] else 0
        return LabelCopies(positions) if positions else None

    def observe(self, x: Any, y: Any) -> None:
        """In-graph: keeps the positions where `x` equals the label `y` in every example."""
        if not isinstance(x, tf.Tensor) or not isinstance(y, tf.Tensor) or not x.dtype.is_floating:
            return
        if self._state is None:
            with _compat.outside_trace():
                self._state = replicas.state_variable(
                    np.append(np.ones(self.positions), 0.0).astype(np.float32),
                    name="gradguard_copies",
                )
        flat = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        labels = tf.reshape(tf.cast(y, tf.float32), [-1, 1])
        per_example = y.shape[1:].num_elements() if y.shape.rank else None  # (labels)
        if flat.shape[-1] not in (None, self.positions) or per_example not in (None, 1):
            return
        if flat.shape[-1] == self.positions and per_example == 1:  # (as many rows as x)
            fits = tf.constant(True)
            equal = tf.reduce_all(tf.equal(flat, labels), axis=0)
        else:  # (a data set's windows may have no static length: checked as they come)
            fits = tf.equal(tf.shape(flat)[1], self.positions) & tf.equal(
                tf.shape(labels)[0], tf.shape(flat)[0]
            )
            equal = tf.cond(
                fits,
                lambda: tf.reduce_all(tf.equal(flat, labels), axis=0),
                lambda: tf.zeros([self.positions], tf.bool),
            )
        equal = tf.cast(tf.ensure_shape(equal, [None]), tf.float32)
        varies = tf.reduce_max(labels) > tf.reduce_min(labels)  # (else any constant input equals)
        state = self._state.read_value()
        folded = tf.concat([state[:-1] * equal, state[-1:] + 1.0], axis=0)
        self._state.assign(tf.where(fits & varies, folded, state))

    def finding(self, step: int) -> Finding | None:
        """`labels-in-inputs` once the labels equalled one input position long enough (host)."""
        if self._state is None or self._told:
            return None
        state = self._state.numpy()
        copied = np.flatnonzero(state[:-1])
        if state[-1] < BATCHES or not len(copied):
            return None
        self._told = True
        message = (
            f"The label of every example equals its own input at position {int(copied[0])} "
            f"(of {self.positions} values, flattened) in all {int(state[-1])} batches seen: the "
            "model can copy its target instead of predicting it, and learns no forecast. A "
            "window built one step off holds its own target: the value after the window is "
            "targets=series[T:] in keras.utils.timeseries_dataset_from_array(series[:-T], ...), "
            "or y = series[i + T] for x = series[i:i + T]. A target column left among the "
            "features is the same leak: drop it from x."
        )
        details = {"position": int(copied[0]), "batches": int(state[-1])}
        return Finding("labels-in-inputs", message, step, details=details)
