"""The largest sample weight a run trains with: weights far below 1 scale SGD's steps down.

Keras averages ``loss * sample_weight`` over the batch (``sum_over_batch_size``), so weights
normalized to sum to 1 over a data set of N examples (``w / w.sum()``, as a probability
distribution) scale the loss and every gradient by about 1/N. Adam and the other adaptive
optimizers divide that scale out again; plain SGD's steps shrink by as much, and
`checks.UpdateRatio` holds their ratios against the healthy range's floor then (as for a
`global_clipnorm` that binds). The largest weight is what is kept, not the mean: a mask of
0s and 1s, or class weights, reach 1 or more however many zeros they hold.

Read from `TrainStep`'s first batch; from `fit`'s `sample_weight` and `class_weight` on the host
as it starts, under ``gradguard run`` (`fit_batches.FitBatches.given`); else in-graph from
every batch of `fit` (`class_weight` reaches its train step as sample weights too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, batch, replicas

__all__ = ["LargestWeight", "largest", "largest_of_classes"]


def largest(sample_weight: Any) -> float | None:
    """The largest magnitude in one batch's `sample_weight` (eagerly); None for none."""
    if sample_weight is None:
        return None
    try:
        weights = np.abs(np.asarray(sample_weight, np.float64))
    except (TypeError, ValueError):  # (per-replica values, a nest of weights)
        return None
    return float(weights.max()) if weights.size else None


def largest_of_classes(class_weight: Any, y: Any) -> float | None:
    """The largest weight `fit`'s `class_weight` gives `y`'s classes (a class left out: 1)."""
    ids = batch.class_ids(y)
    if not isinstance(class_weight, Mapping) or ids is None or not ids.size:
        return None
    try:
        return max(abs(float(class_weight.get(int(c), 1.0))) for c in np.unique(ids))
    except (TypeError, ValueError):
        return None


class LargestWeight:
    """The largest magnitude of `fit`'s sample weights, folded in-graph over its batches."""

    def __init__(self) -> None:
        self._state: tf.Variable | None = None

    def observe(self, sample_weight: Any) -> None:
        """In-graph: folds a batch's weights (none, or a nest of them: nothing)."""
        if not isinstance(sample_weight, tf.Tensor) or not sample_weight.dtype.is_floating:
            return
        if self._state is None:
            with _compat.outside_trace():
                self._state = replicas.state_variable(
                    np.float32(0.0), name="gradguard_sample_weight_largest"
                )
        batch = tf.reduce_max(tf.abs(tf.cast(sample_weight, tf.float32)))
        self._state.assign(tf.maximum(self._state.read_value(), batch))

    def value(self) -> float | None:
        """The largest weight seen so far (a host read); None before any."""
        return None if self._state is None else float(self._state.numpy())
