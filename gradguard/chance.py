"""Chance level: the loss of a model that ignores its inputs and predicts the labels' distribution.

A classifier stuck at chance level predicts the class frequencies whatever the input: its
cross-entropy is the labels' entropy (ln C for C balanced classes); a regressor stuck there
predicts the labels' mean: its mean squared error is their variance. `LossNotDecreasing` reports
a loss that sits there (``Context.notes["chance_loss"]``).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, ordering, replicas
from gradguard.findings import Finding

__all__ = [
    "NOISY",
    "LabelCounts",
    "LabelSample",
    "chance_loss",
    "comparable",
    "entropy",
    "loss_family",
]

# Keras loss names (as `model.compile` and `keras.losses.get` spell them) by family.
_SPARSE = {"sparse_categorical_crossentropy", "sparsecategoricalcrossentropy"}
_CATEGORICAL = {"categorical_crossentropy", "categoricalcrossentropy"}
_BINARY = {"binary_crossentropy", "binarycrossentropy"}
_SQUARED = {"mean_squared_error", "meansquarederror", "mse"}


def loss_family(loss: Any) -> str | None:
    """The loss's family from its Keras name, class name or function name; None if unknown."""
    if loss is None:
        return None
    name = loss if isinstance(loss, str) else getattr(loss, "name", None)
    name = name or getattr(loss, "__name__", None) or type(loss).__name__
    name = str(name).lower()
    for family, names in (
        ("sparse", _SPARSE),
        ("categorical", _CATEGORICAL),
        ("binary", _BINARY),
        ("squared", _SQUARED),
    ):
        if name in names:
            return family
    return None


def _count(labels: np.ndarray, family: str | None) -> int:
    """How many labels: one a row of one-hot labels, one a value otherwise."""
    return labels.size // max(labels.shape[-1], 1) if family == "categorical" else labels.size


def entropy(frequencies: np.ndarray) -> float:
    """The entropy of class frequencies (classes of frequency 0 left out)."""
    p = frequencies[frequencies > 0]
    return float(-(p * np.log(p)).sum())


# Fewer labels than this (or than 10 a class) estimate the entropy or variance too roughly to
# judge a model by: classes are then taken as balanced, the upper bound of their entropy.
MIN_LABELS = 100


def chance_loss(loss: Any, outputs: int | None, labels: Any = None) -> float | None:
    """The chance-level loss for a Keras loss, or None when it cannot be told.

    Args:
      loss: A Keras loss object or name (as given to `compile` or `TrainStep`); its
        ``label_smoothing``, if any, smooths the labels as the loss does.
      outputs: The size of the model output's last axis (C classes), if known.
      labels: Labels seen, if any: the class frequencies (or the variance) are taken from them
        when there are enough; otherwise classes are taken as balanced (ln C, the most a
        model that ignores its inputs can score), and a squared error has no chance level.

    Returns:
      The loss of predicting the label distribution, or None (an unknown loss, no classes).
    """
    family = loss_family(loss)
    enough = MIN_LABELS  # labels to tell frequencies from: 10 a class where there are many
    if family in ("sparse", "categorical"):
        enough = max(enough, 10 * (outputs or 0))
    y = None if labels is None else np.asarray(labels)
    if y is not None and (y.ndim == 0 or _count(y, family) < enough):
        y = None
    smoothing = float(getattr(loss, "label_smoothing", 0.0) or 0.0)
    if family == "squared":
        if y is None or not np.issubdtype(y.dtype, np.number):
            return None
        variance = float(np.var(y.reshape(len(y), -1).astype(np.float64), axis=0).mean())
        return variance if variance > 0 else None
    if family == "binary":
        if y is None:
            return math.log(2)
        values = y.reshape(-1, 1).astype(np.float64)
        rows = np.concatenate([values, 1.0 - values], axis=1)  # each label as its two classes
        return _room(_binary_entropy(float(np.mean(y)), smoothing), _mean_entropy(rows, smoothing))
    if family in ("sparse", "categorical") and outputs and outputs >= 2:
        if y is None:
            return math.log(outputs)
        if family == "sparse":
            labels = y.reshape(-1).astype(np.int64).clip(0, outputs - 1)
            counts = np.bincount(labels, minlength=outputs)
            return _smoothed_entropy(counts / max(counts.sum(), 1), smoothing)
        rows = y.reshape(-1, y.shape[-1]).astype(np.float64)
        level = _smoothed_entropy(rows.mean(axis=0), smoothing)
        return _room(level, _mean_entropy(rows, smoothing))
    return None


# Soft labels whose own entropy (the best loss on them) is above this share of their mean's
# (the loss of a model that ignores its inputs) leave no chance level to judge by: a student
# that learned a teacher's targets at a high temperature (near uniform) scores within the
# band of one that learned nothing.
SOFT_ROOM = 0.9


def _room(level: float, floor: float) -> float | None:
    """The chance `level`, or None when the labels' own entropy `floor` is too near it."""
    return level if floor <= SOFT_ROOM * level else None


def _mean_entropy(rows: np.ndarray, smoothing: float) -> float:
    """The mean entropy of label rows (0 for one-hot rows), smoothed as the loss smooths them."""
    p = np.clip(rows, 0.0, 1.0) * (1 - smoothing) + smoothing / rows.shape[-1]
    return float(-np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=-1).mean())


def _smoothed_entropy(frequencies: np.ndarray, smoothing: float) -> float:
    """The entropy of class frequencies, smoothed as the loss smooths its labels."""
    return entropy(frequencies * (1 - smoothing) + smoothing / len(frequencies))


def _binary_entropy(positive: float, smoothing: float) -> float:
    """The entropy of a share of positive labels (kept off 0 and 1, as the loss clips)."""
    p = min(max(positive * (1 - smoothing) + smoothing / 2, 1e-7), 1 - 1e-7)
    return entropy(np.array([p, 1 - p]))


class LabelSample:
    """The labels of batches spread over a run, for its chance level.

    One batch is not the data: in an ordered (unshuffled) dataset, or with a rare class, the
    first batch's variance or class frequencies can be far from the run's, and a model that
    beats the true chance level would be told it only guesses. The owner adds the labels of
    its first batch and of the batch at each host read; past `limit` batches, each new one
    replaces one kept at random (a uniform sample of the batches added). Each batch keeps at
    most ``values // limit`` label values (whole examples, at random): a segmentation mask is
    hundreds of thousands of labels an example.
    """

    def __init__(self, limit: int = 64, values: int = 1 << 20, seed: int = 0):
        self.limit = limit
        self._per_batch = max(1, values // limit)
        self._batches: list[np.ndarray] = []
        self._added = 0
        self._rng = np.random.default_rng(seed)

    def add(self, labels: Any) -> None:
        """Keeps a batch's labels (not: None, or labels of another shape than the first's)."""
        if labels is None:
            return
        labels = np.asarray(labels)
        if labels.ndim == 0 or labels.dtype == object or not len(labels):
            return  # no labels, or not an array of them (a batch a strategy already split)
        if self._batches and labels.shape[1:] != self._batches[0].shape[1:]:
            return
        examples = max(1, self._per_batch // max(1, labels[0].size))
        if len(labels) > examples:
            labels = labels[np.sort(self._rng.choice(len(labels), examples, replace=False))]
        self._added += 1
        if len(self._batches) < self.limit:
            self._batches.append(labels)
        elif (slot := int(self._rng.integers(self._added))) < self.limit:
            self._batches[slot] = labels

    def one_value(self) -> float | None:
        """The one value every label kept has, if at least `MIN_LABELS` were kept; else None."""
        if not self._batches:
            return None
        labels = np.concatenate(self._batches)
        if labels.size < MIN_LABELS or not np.issubdtype(labels.dtype, np.number):
            return None
        first = labels.flat[0]
        return float(first) if bool(np.all(labels == first)) else None

    def chance_loss(self, loss: Any, outputs: int | None) -> float | None:
        """`chance_loss` of the labels kept (None labels when none were)."""
        labels = np.concatenate(self._batches) if self._batches else None
        return chance_loss(loss, outputs, labels)


# Layers that make the training loss noisier than the model: it then runs above the labels'
# entropy while the model, at inference, beats it.
NOISY = (keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout)


def comparable(model: Any) -> bool:
    """Whether `model`'s training loss can be held against its labels' entropy.

    Not with dropout or noise layers (with a rate of 0.5 the training loss of a binary
    classifier ran 6% above the entropy that its test loss beat by 2%), nor with penalties added
    to the loss (`model.losses`: an L2 term is not the labels' to beat).
    """
    layers = _compat.flatten_layers(model)
    noisy = any(isinstance(layer, NOISY) and getattr(layer, "rate", 0) for layer in layers)
    return not noisy and not getattr(model, "losses", None)


class LabelCounts:
    """The class counts of the labels a step trains on, folded in-graph, for its chance level.

    `fit`'s labels, and those a hand-written step's cross-entropy reads, are not seen on the
    host: without them classes are taken as balanced (ln C), and a model stuck at the class
    frequencies of an imbalanced task (their entropy, below ln C) would never be told it
    guesses. One count per class is added each step (the batch's class ids scattered, one-hot
    or 0/1 labels summed: one pass over the labels) and read with the checks. The labels'
    entropy is added too (as the loss smooths them; 0 for hard labels it does not): the best
    loss on them, which a model that learned them reaches. Soft labels (rates, a teacher's
    targets) or smoothed ones are held against their mean's entropy only where their own is
    clearly below it (`SOFT_ROOM`).
    """

    def __init__(self, loss: Any, outputs: int):
        self.loss = loss
        self.outputs = outputs
        self.family = loss_family(loss)
        self.smoothing = float(getattr(loss, "label_smoothing", 0.0) or 0.0)
        self._counts: tf.Variable | None = None
        # Whether the batches come one class at a time.
        self.batches = ordering.BatchClasses(2 if self.family == "binary" else outputs)

    @staticmethod
    def applies(loss: Any, outputs: int | None) -> bool:
        """Whether the loss is a cross-entropy whose labels' classes can be counted.

        C outputs of a categorical one; any number of 0/1 outputs, counted together.
        """
        family = loss_family(loss)
        if family == "binary":
            return outputs is not None and outputs >= 1
        return family in ("sparse", "categorical") and outputs is not None and outputs >= 2

    def observe(self, y: Any) -> None:
        """In-graph: adds a step's labels to the counts."""
        if not isinstance(y, tf.Tensor) or not (y.dtype.is_floating or y.dtype.is_integer):
            return
        classes = 2 if self.family == "binary" else self.outputs
        if self._counts is None:  # a count per class, the labels' entropy, labels off [0, 1]
            with _compat.outside_trace():
                self._counts = replicas.state_variable(
                    np.zeros(classes + 2, np.float32), name="gradguard_label_counts"
                )
        if self.family == "sparse":
            ids = tf.clip_by_value(tf.cast(tf.reshape(y, [-1]), tf.int32), 0, classes - 1)
            counts = tf.math.unsorted_segment_sum(tf.ones_like(ids, tf.float32), ids, classes)
            spread = tf.zeros([2])
        else:
            if self.family == "categorical" and (y.shape.rank is None or y.shape[-1] != classes):
                return
            y = tf.cast(y, tf.float32)
            if self.family == "categorical":
                counts = tf.reduce_sum(tf.reshape(y, [-1, classes]), axis=0)
            else:
                positive = tf.reduce_sum(y)
                counts = tf.stack([tf.cast(tf.size(y), tf.float32) - positive, positive])
            # The labels' entropy as the loss smooths them: the best loss on them (0 for 0/1
            # labels the loss does not smooth).
            p = tf.clip_by_value(y, 0.0, 1.0)
            p = p * (1.0 - self.smoothing) + self.smoothing / classes
            entropy = -tf.math.xlogy(p, p)
            if self.family == "binary":
                entropy -= tf.math.xlogy(1.0 - p, 1.0 - p)
            outside = tf.cast((y < 0.0) | (y > 1.0), tf.float32)
            spread = tf.stack([tf.reduce_sum(entropy), tf.reduce_sum(outside)])
        self._counts.assign_add(tf.concat([counts, spread], axis=0))
        self.batches.observe(counts, tf.shape(y)[0])

    def _counted(self) -> np.ndarray | None:
        """The counts, the labels' entropy and those off [0, 1] (host); None before enough."""
        if self._counts is None:
            return None
        state = self._counts.numpy().astype(np.float64)
        enough = max(MIN_LABELS, 10 * self.outputs)
        return state if np.all(np.isfinite(state)) and state[:-2].sum() >= enough else None

    def one_value(self) -> float | None:
        """The one class (id, or 0/1) every label counted was, if enough were (host); else None.

        Categorical rows are not a value: None for them.
        """
        state = self._counted()
        if state is None or self.family == "categorical":
            return None
        classes = np.flatnonzero(state[:-2])
        return float(classes[0]) if len(classes) == 1 else None

    def batches_one_class(self, step: int) -> Finding | None:
        """`batches-one-class` if the batches came one class at a time (a host read)."""
        return self.batches.judge(step)

    def chance_loss(self) -> float | None:
        """The entropy of the class frequencies counted (host), or ln C before enough labels.

        None where the labels' own entropy, the best loss on them (soft labels, or labels the
        loss smooths), is near it (`SOFT_ROOM`).
        """
        state = self._counted()
        if state is None or state[-1] > 0:  # (labels off [0, 1]: not a distribution's)
            return chance_loss(self.loss, self.outputs)
        counts, entropy = state[:-2], state[-2]
        if self.family == "binary":
            level = _binary_entropy(counts[1] / counts.sum(), self.smoothing)
        else:
            level = _smoothed_entropy(counts / counts.sum(), self.smoothing)
        # The entropy per label counted (a row of C classes, or one 0/1 value).
        return _room(level, entropy / counts.sum())
