"""Labels the model's output cannot reach, or its loss cannot read (`labels-out-of-range`).

Two mismatches are plain once the labels' range is known:

* a regression loss (mean squared or absolute error) against an output squashed into [0, 1]
  (a sigmoid, a softmax) or [-1, 1] (a tanh), with targets outside it (prices, ages, 10..90):
  the output saturates at its bound, the gradients through it vanish, and the model predicts
  the same value for every input; likewise an output of at least 0 (a ReLU, a softplus) with
  targets well below 0 (standardized: half of them), each predicted as 0 at best;
* a binary cross-entropy, which reads labels as probabilities in [0, 1], given other values
  (classes numbered 1 and 2, pixel values): the loss falls below zero without measuring any fit;
  or given 0 and exactly 1/255 (masks of 0 and 1 divided by 255 with the images): never 1;
* a softmax output, whose outputs sum to 1 for each example, against labels of its width that
  sum to more (several classes at once: multi-label; or counts, annotators' votes) in a
  cross-entropy or a regression loss: no two labels can both be likely, and TensorFlow's
  softmax cross-entropy takes its gradient as ``p - y``, right only for labels summing to 1.

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

# Output activations whose values lie in a bounded (or half-bounded) range, and that range.
_SQUASHING = {
    keras.activations.sigmoid: (0.0, 1.0, "a sigmoid"),
    keras.activations.hard_sigmoid: (0.0, 1.0, "a hard sigmoid"),
    keras.activations.softmax: (0.0, 1.0, "a softmax"),
    keras.activations.tanh: (-1.0, 1.0, "a tanh"),
    keras.activations.relu6: (0.0, 6.0, "a ReLU6"),
    keras.activations.relu: (0.0, np.inf, "a ReLU"),
    keras.activations.softplus: (0.0, np.inf, "a softplus"),
    keras.activations.exponential: (0.0, np.inf, "an exponential"),
    keras.activations.elu: (-1.0, np.inf, "an ELU"),
}
# Labels may pass a bound by this much (float round-off in preprocessing).
_TOLERANCE = 1e-3
# Below a one-sided bound (a ReLU's 0) the labels must reach this share of how far above it they
# reach: noise taking a few of a positive target's labels a little below 0 is no mismatch;
# standardized targets reach as far below 0 as above.
_BELOW_ONE_SIDED = 0.25
# An example's labels summing to this much against a softmax are several labels at once (two
# tags, soft multi-label targets) or counts, not a distribution's round-off or loose smoothing.
_SUMS_BEYOND_ONE = 1.5
# The losses that compare labels of a softmax output's width with its outputs one by one.
_ELEMENTWISE = (baseline.CE, baseline.BINARY_CE, baseline.MSE, baseline.MAE)


# What a `LabelRange` keeps: [smallest label, largest, largest sum of an example's labels against
# a softmax, smallest such sum, largest label of the softmax's first unit]; True where the
# largest is kept.
_FOLD_MAX = np.array([False, True, True, False, True])


_BINARY_FIX = "number the two classes 0 and 1, or use sparse categorical cross-entropy for more"
_PIXEL = 1.0 / 255.0  # a binary label of 1 divided like a pixel: 0.00392...


def _binary_fix(low: float, high: float) -> str:
    """How labels in [`low`, `high`] become a binary cross-entropy's 0 and 1 (its `Bounds.fix`)."""
    if low >= 0 and high == 255:
        return "divide them by 255 (masks or images stored as 0 and 255: y / 255)"
    if low == -1 and high == 1:
        return "number the two classes 0 and 1: (y + 1) / 2"
    if low == 1 and high == 2:
        return "number the two classes 0 and 1: y - 1"
    if low >= 0 and high > 2 and float(high).is_integer():
        return (
            f"classes numbered up to {number(high)} are more than two: one softmax unit per class "
            "with sparse categorical cross-entropy"
        )
    return _BINARY_FIX


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The range labels must lie in, and why (for the message).

    `softmax`: the output layer's name and width when it is a softmax over more than one class:
    each example's labels of that width must then sum to at most 1 (`_SUMS_BEYOND_ONE`).
    """

    low: float = -np.inf
    high: float = np.inf
    why: str = ""
    fix: str = ""
    softmax: tuple[str, int] | None = None


def bounds(model: Any, loss_fn: Any) -> Bounds | None:
    """The range `loss_fn` and `model`'s output layer allow the labels, or None if unbounded."""
    kind = baseline.kind_of(loss_fn)
    if kind is None:
        return None
    softmax = output_layer.softmax_width(model) if kind.name in _ELEMENTWISE else None
    if kind.name == baseline.BINARY_CE:
        why = "binary cross-entropy reads the labels as probabilities, in [0, 1]"
        return Bounds(0.0, 1.0, why, _BINARY_FIX, softmax)
    output = output_layer.of(model) if kind.name in (baseline.MSE, baseline.MAE) else None
    layer = output[0] if output is not None else None
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Softmax):
        activation = keras.activations.softmax
    squashing = _SQUASHING.get(activation)
    if squashing is None or layer is None:
        return Bounds(softmax=softmax) if softmax else None
    low, high, name = squashing
    values = f"lie in [{low:g}, {high:g}]" if np.isfinite(high) else f"are at least {low:g}"
    return Bounds(
        low,
        high,
        f"the output layer {layer.name!r} ends in {name}, whose values {values} (at a "
        "bound its gradients vanish)",
        "give a regression's last layer no activation, or scale the targets into that range",
        softmax,
    )


class LabelRange:
    """The range of the labels seen so far, held against `Bounds`.

    Labels are added on the host (`add`) or folded in-graph (`observe`); `judge` reads both.
    Kept: the smallest and the largest label, and, against a softmax, the largest and the
    smallest sum of one example's labels of its width and the largest label of its first unit
    (-inf, inf and -inf until such labels are seen).
    """

    def __init__(self, allowed: Bounds):
        self.bounds = allowed
        self._host = np.where(_FOLD_MAX, -np.inf, np.inf)
        self._graph: tf.Variable | None = None

    def _sums(self, shape: Any) -> bool:
        """Whether labels of `shape` are summed per example (a softmax output's width)."""
        softmax = self.bounds.softmax
        return softmax is not None and len(shape) >= 2 and shape[-1] == softmax[1]

    def add(self, labels: Any) -> None:
        """Host: a batch's labels (a NumPy array; None is ignored)."""
        if labels is None or not np.size(labels) or not np.issubdtype(labels.dtype, np.number):
            return
        read = [np.min(labels), np.max(labels), -np.inf, np.inf, -np.inf]
        if self._sums(labels.shape):
            sums = np.sum(labels, axis=-1)
            read[2] = np.max(sums)
            if labels.ndim == 2:  # (one label per example: a sequence's padding is no class)
                read[3:] = [np.min(sums), np.max(labels[..., 0])]
        self._host = np.where(_FOLD_MAX, np.maximum(self._host, read), np.minimum(self._host, read))

    def observe(self, y: Any) -> None:
        """In-graph: folds a step's labels into the running extremes (`_FOLD_MAX`)."""
        if not isinstance(y, tf.Tensor) or not (y.dtype.is_floating or y.dtype.is_integer):
            return
        if self._graph is None:
            with _compat.outside_trace():
                self._graph = replicas.state_variable(
                    np.where(_FOLD_MAX, -np.inf, np.inf).astype(np.float32),
                    name="gradguard_label_range",
                )
        y = tf.cast(y, tf.float32)
        read = [tf.reduce_min(y), tf.reduce_max(y), -np.inf, np.inf, -np.inf]
        if self._sums(y.shape):
            sums = tf.reduce_sum(y, -1)
            read[2] = tf.reduce_max(sums)
            if y.shape.rank == 2:  # (one label per example: a sequence's padding is no class)
                read[3:] = [tf.reduce_min(sums), tf.reduce_max(y[..., 0])]
        read_tensor = tf.stack([tf.cast(v, tf.float32) for v in read])
        seen = self._graph.read_value()
        self._graph.assign(
            tf.where(_FOLD_MAX, tf.maximum(seen, read_tensor), tf.minimum(seen, read_tensor))
        )

    def extent(self) -> tuple[float, float]:
        """The smallest and the largest label seen (a host read; inf and -inf before any)."""
        low, high, *_ = self._seen()
        return low, high

    def _seen(self) -> list[float]:
        seen = self._host
        if self._graph is not None:
            graph = self._graph.numpy().astype(np.float64)
            seen = np.where(_FOLD_MAX, np.maximum(seen, graph), np.minimum(seen, graph))
        return [float(v) for v in seen]

    def judge(self, step: int) -> Finding | None:
        """`labels-out-of-range` when the labels seen pass the bounds (a host read)."""
        low, high, largest, least, first = self._seen()
        allowed = self.bounds
        if not (np.isfinite(low) and np.isfinite(high)):
            return None  # no labels yet (or NaN in them: the data's own finding)
        details: dict[str, Any] = {"labels": [float(low), float(high)]}
        above = max(high - allowed.low, 0.0)
        below = _TOLERANCE if np.isfinite(allowed.high) else _BELOW_ONE_SIDED * above
        if low < allowed.low - max(below, _TOLERANCE) or high > allowed.high + _TOLERANCE:
            fix = _binary_fix(low, high) if allowed.fix is _BINARY_FIX else allowed.fix
            message = (
                f"The labels range over [{number(low)}, {number(high)}], which the model cannot "
                f"be trained towards: {allowed.why}; {fix}."
            )
            details["allowed"] = [allowed.low, allowed.high if np.isfinite(allowed.high) else None]
            return Finding("labels-out-of-range", message, step, details=details)
        if allowed.fix is _BINARY_FIX and abs(low) <= _TOLERANCE and abs(high - _PIXEL) < 1e-6:
            message = (
                f"The labels range over [{number(low)}, {number(high)}]: their largest is 1/255, "
                "where a binary cross-entropy's positive label is 1. Masks (or labels) stored "
                "as 0 and 1 were divided by 255 with the images, so every prediction is trained "
                "towards about 0 and the positive class is never learned. Divide only the "
                "inputs by 255, or multiply these labels by 255."
            )
            details["pixel_scaled"] = True
            return Finding("labels-out-of-range", message, step, details=details)
        if allowed.softmax is None or low < -_TOLERANCE:
            return None
        name, width = allowed.softmax
        # One-hot rows of classes numbered from 1: the last class a row of zeros, unit 0 empty
        # (one label per example: a tagger's padded positions are rows of zeros on purpose).
        if least <= _TOLERANCE and first <= _TOLERANCE and high >= 1.0 - _TOLERANCE:
            message = (
                "Some examples' labels are all 0 and the first unit of the output layer "
                f"{name!r} is never a target: classes numbered from 1 and one-hot encoded with "
                f"their count as the depth (tf.one_hot(ids, depth={width}) of ids 1..{width}; a "
                "StringLookup keeps id 0 for unknown values), so the last class becomes a row "
                "of zeros, with no class to train towards and no gradient, and unit 0 is never "
                "learned. Number the classes from 0: ids - 1, or "
                "StringLookup(..., num_oov_indices=0)."
            )
            details["row_sums"] = [least, largest]
            return Finding("labels-out-of-range", message, step, details=details)
        # Labels a softmax cannot sum to: several classes at once, or counts.
        if largest < _SUMS_BEYOND_ONE:
            return None
        message = (
            f"Some examples' labels sum to {number(largest)}, which the output layer {name!r} "
            f"cannot be trained towards: its softmax makes each example's {width} outputs sum "
            "to 1 (and a softmax cross-entropy's gradient, p - y, holds only for labels that "
            "do). "
        )
        if high <= 1.0 + _TOLERANCE:  # several classes at once: multi-label, or a spread
            message += (
                f"For several labels per example (multi-label), end the model in {width} "
                'sigmoid units (activation="sigmoid") and train with binary_crossentropy; for '
                "a distribution over the classes, divide the labels by their sum "
                "(y / y.sum(axis=-1, keepdims=True))."
            )
        else:  # counts (annotators' votes) or scores
            message += (
                "Divide them by their sum (y / y.sum(axis=-1, keepdims=True)) to train towards "
                "their distribution."
            )
        details["largest_label_sum"] = float(largest)
        return Finding("labels-out-of-range", message, step, details=details)
