"""`fit`'s class-balancing `sample_weight` left in another order than its labels.

Class-balancing weights are one value per class, each inversely proportional to its class's
count (``n / (n_classes * count)``, indexed by the labels). Computed before ``x`` and ``y``
were shuffled, sorted or split by an index (``x, y = x[perm], y[perm]``) and not indexed with
them, they keep their values and their counts but land on other examples: the rare class's
examples weigh about what the frequent class's do, and the imbalance they were computed for
is not compensated at all. Judged as `fit` starts, under ``gradguard run``, from its arrays (or
the first rows of those a data set only slices, shuffles and batches): weights that have as
many values as the labels have classes, in inverse proportion to their counts, those counts
close to the classes' (`COUNTS`), yet little of their variance lies between the classes
(`FOLLOWS`). Weights that follow the labels explain all of it; weights for anything else
(recency, confidence) do not take the classes' counts. Weights that balance these very rows
exactly (value times count the same for every value) were computed on them: unless their
counts are exactly the classes', they balance other groups (a demographic group about as
large as a class) and are silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import batch
from gradguard.findings import Finding

__all__ = ["COUNTS", "FOLLOWS", "IMBALANCE", "shuffled_apart"]

IMBALANCE = 1.5  # the most frequent class has this many times the rarest class's examples
COUNTS = 0.2  # each weight value's count is within this share of a class's count
BALANCED = 1.2  # value * count is within this factor across the weights' values
FOLLOWS = 0.5  # weights that follow the labels hold at least this share of their variance
_MOST_CLASSES = 20


def shuffled_apart(arguments: Mapping[str, Any], step: int) -> list[Finding]:
    """`sample-weights-misaligned` for class-balancing weights that do not follow the labels.

    Args:
      arguments: `fit`'s arguments by name: its labels `y` (class ids or one-hot rows),
        `sample_weight` (a NumPy array or an eager tensor, one weight per example) and
        `validation_split` (its last examples are not trained on). Anything else is not judged.
      step: The step to date the finding at.
    """
    read = _read(arguments)
    if read is None:
        return []
    ids, weights = read
    classes, counts = np.unique(ids, return_counts=True)
    values, value_counts = np.unique(weights, return_counts=True)
    if not 2 <= len(classes) == len(values) <= _MOST_CLASSES:
        return []
    if counts.max() < IMBALANCE * counts.min() or values.min() <= 0:
        return []
    mass = values * value_counts
    if mass.max() > BALANCED * mass.min():
        return []  # (not in inverse proportion to their counts: not class-balancing)
    by_count, by_value_count = np.sort(counts), np.sort(value_counts)
    if np.any(np.abs(by_value_count - by_count) > COUNTS * by_count):
        return []
    exact = mass.max() <= (1.0 + 1e-6) * mass.min()
    if exact and np.any(by_value_count != by_count):
        return []  # (they balance other groups of these very rows: a group's, not the classes')
    means = np.array([weights[ids == c].mean() for c in classes])
    between = np.sum(counts * (means - weights.mean()) ** 2) / len(weights)
    share = float(between / weights.var())
    if share >= FOLLOWS:
        return []
    rarest = int(np.argmin(counts))
    heaviest = float(values.max())
    held = float(np.mean(weights[ids == classes[rarest]] == heaviest))
    carried = int(value_counts[np.argmax(values)])
    rare = classes[rarest]
    message = (
        f"fit's sample_weight looks computed to balance the classes (one value per class, "
        f"{heaviest:.3g} on {carried} examples, as class {rare} has {counts[rarest]}), but "
        f"it does not follow the labels: only {held:.0%} of class {rare}'s examples weigh "
        f"{heaviest:.3g}, and the classes explain {share:.0%} of the weights' variance (all "
        "of it when they follow). The weights were likely computed before x and y were "
        "shuffled, sorted or split by an index, and not indexed with them: index the weights "
        "the same way (x, y, w = x[perm], y[perm], w[perm]) or compute them from the final y."
    )
    details = {
        "classes": [int(c) for c in classes],
        "class_counts": [int(c) for c in counts],
        "values": [float(v) for v in values],
        "value_counts": [int(c) for c in value_counts],
        "between_share": share,
    }
    return [Finding("sample-weights-misaligned", message, step, details=details)]


def _read(arguments: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The training part's class ids and one weight per example; None if not both."""
    ids, weights = batch.class_ids(arguments.get("y")), arguments.get("sample_weight")
    if isinstance(weights, tf.Tensor):  # (a data set's first rows)
        weights = weights.numpy()
    if ids is None or not isinstance(weights, np.ndarray) or weights.dtype.kind not in "biuf":
        return None
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != ids.shape or not np.all(np.isfinite(weights)):
        return None
    parts = batch.training_part(ids, arguments), batch.training_part(weights, arguments)
    return parts[0].astype(np.int64), parts[1].astype(np.float64)
