"""Labels the model's output cannot reach, or its loss cannot read (`labels-out-of-range`).

Two mismatches are plain once the labels' range is known:

* a regression loss (mean squared or absolute error) against an output squashed into [0, 1]
  (a sigmoid, a softmax) or [-1, 1] (a tanh), with targets outside it (prices, ages, 10..90):
  the output saturates at its bound, the gradients through it vanish, and the model predicts
  the same value for every input;
* a binary cross-entropy, which reads labels as probabilities in [0, 1], given other values
  (classes numbered 1 and 2, pixel values): the loss falls below zero without measuring any fit.

Which bounds apply is told from the loss and the output layer alone. The labels' range is taken
where they are seen: `TrainStep` on the host, from the batches it samples for the chance level;
`fit` in-graph, a running minimum and maximum (two reductions over a step's labels, only when
bounds apply), read with the checks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, baseline, output_layer, replicas
from gradguard.findings import Finding, number

__all__ = ["Bounds", "LabelRange", "bounds"]

# Output activations whose values lie in a bounded range, and that range.
_SQUASHING = {
    keras.activations.sigmoid: (0.0, 1.0, "a sigmoid"),
    keras.activations.hard_sigmoid: (0.0, 1.0, "a hard sigmoid"),
    keras.activations.softmax: (0.0, 1.0, "a softmax"),
    keras.activations.tanh: (-1.0, 1.0, "a tanh"),
}
# Labels may pass a bound by this much (float round-off in preprocessing).
_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The range labels must lie in, and why (for the message)."""

    low: float
    high: float
    why: str
    fix: str


def bounds(model: Any, loss_fn: Any) -> Bounds | None:
    """The range `loss_fn` and `model`'s output layer allow the labels, or None if unbounded."""
    kind = baseline.kind_of(loss_fn)
    if kind is not None and kind.name == baseline.BINARY_CE:
        return Bounds(
            0.0,
            1.0,
            "binary cross-entropy reads the labels as probabilities, in [0, 1]",
            "number the two classes 0 and 1 (e.g. y - 1), or use sparse categorical "
            "cross-entropy for more than two classes",
        )
    output = output_layer.of(model)
    if kind is None or kind.name not in (baseline.MSE, baseline.MAE) or output is None:
        return None
    layer = output[0]
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Softmax):
        activation = keras.activations.softmax
    squashing = _SQUASHING.get(activation)
    if squashing is None:
        return None
    low, high, name = squashing
    return Bounds(
        low,
        high,
        f"the output layer {layer.name!r} ends in {name}, whose values lie in "
        f"[{low:g}, {high:g}] (it saturates, and its gradients vanish)",
        "give a regression's last layer no activation, or scale the targets into that range",
    )


class LabelRange:
    """The range of the labels seen so far, held against `Bounds`.

    Labels are added on the host (`add`) or folded in-graph (`observe`); `judge` reads both.
    """

    def __init__(self, allowed: Bounds):
        self.bounds = allowed
        self._host = [np.inf, -np.inf]
        self._graph: tf.Variable | None = None

    def add(self, labels: Any) -> None:
        """Host: a batch's labels (a NumPy array; None is ignored)."""
        if labels is None or not np.size(labels) or not np.issubdtype(labels.dtype, np.number):
            return
        self._host = [min(self._host[0], np.min(labels)), max(self._host[1], np.max(labels))]

    def observe(self, y: Any) -> None:
        """In-graph: folds a step's labels into the running minimum and maximum."""
        if not isinstance(y, tf.Tensor) or not (y.dtype.is_floating or y.dtype.is_integer):
            return
        if self._graph is None:
            with _compat.outside_trace():
                self._graph = replicas.state_variable(
                    np.array([np.inf, -np.inf], np.float32), name="gradguard_label_range"
                )
        y = tf.cast(y, tf.float32)
        seen = self._graph.read_value()
        self._graph.assign(
            tf.stack([tf.minimum(seen[0], tf.reduce_min(y)), tf.maximum(seen[1], tf.reduce_max(y))])
        )

    def judge(self, step: int) -> Finding | None:
        """`labels-out-of-range` when the labels seen pass the bounds (a host read)."""
        low, high = self._host
        if self._graph is not None:
            seen = self._graph.numpy()
            low, high = min(low, float(seen[0])), max(high, float(seen[1]))
        allowed = self.bounds
        if not (np.isfinite(low) and np.isfinite(high)):
            return None  # no labels yet (or NaN in them: the data's own finding)
        if low >= allowed.low - _TOLERANCE and high <= allowed.high + _TOLERANCE:
            return None
        message = (
            f"The labels range over [{number(low)}, {number(high)}], which the model cannot be "
            f"trained towards: {allowed.why}; {allowed.fix}."
        )
        details = {"labels": [float(low), float(high)], "allowed": [allowed.low, allowed.high]}
        return Finding("labels-out-of-range", message, step, details=details)
