"""`fit`'s `class_weight` that misses its classes: inverted, or numbered one above the labels.

`class_weight` is there to even out imbalanced classes: each class's weight inversely
proportional to its count (``total / (n_classes * count)``, sklearn's
``compute_class_weight("balanced")``). Written as ``count / total`` instead (or the balanced
weights given to the wrong classes), it multiplies the imbalance: the rare classes' share of
the weighted loss falls to almost nothing, the model may predict the frequent class only, and
accuracy still looks good. Judged under ``gradguard run`` at the end of a `fit` (which it
wraps), from the `class_weight` and the labels `fit` was given: weights that favour the
frequent classes in proportion to their counts (`PROPORTIONAL`). Other weights that favour a
frequent class are a choice: cost-sensitive learning weighs the class whose errors cost more
(a false alarm that costs 4 times a miss), whatever its count.

Weights counted on labels numbered from 1 (``np.bincount`` of raw ids 1..K, or a dict keyed by
them) but given to a `fit` whose labels are numbered from 0 land one class off: class k gets
the weight meant for class k - 1, class 0 a weight meant for no class (0 after a bincount), and
the last class's weight goes to a class the model cannot output (`misnumbered`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gradguard import batch
from gradguard.findings import Finding

__all__ = ["IMBALANCE", "PROPORTIONAL", "SHRUNK", "inverted", "misnumbered"]

IMBALANCE = 3.0  # the most frequent class has this many times the rarest class's examples
SHRUNK = 0.5  # ... and the weights leave the rarest class this share of its unweighted share
# ... and each class's weight per example is within this factor of the others': the weights
# follow the counts (count / total), not costs.
PROPORTIONAL = 1.2


def inverted(arguments: Mapping[str, Any], step: int) -> list[Finding]:
    """`class-weights-inverted` for a `fit` whose `class_weight` shrinks the rarest class more.

    Args:
      arguments: `fit`'s arguments by name: `class_weight` (class id to weight; a class left
        out weighs 1), its labels `y` (class ids or one-hot rows; anything else is not
        judged) and `validation_split` (its last examples are not trained on).
      step: The step to date the finding at.
    """
    given = _given(arguments)
    if given is None:
        return []
    keyed, classes, counts = given
    weights = np.array([keyed.get(int(c), 1.0) for c in classes])
    if len(classes) < 2 or not np.all(weights > 0) or counts.max() < IMBALANCE * counts.min():
        return []
    shares = counts / counts.sum()
    weighted = counts * weights / np.sum(counts * weights)
    rarest, commonest = int(np.argmin(counts)), int(np.argmax(counts))
    if weighted[rarest] > SHRUNK * shares[rarest] or weights[commonest] <= weights[rarest]:
        return []
    per_example = weights / counts
    if per_example.max() > PROPORTIONAL * per_example.min():
        return []  # (weights chosen for the cost of each class's errors)
    shown = "; ".join(
        f"class {classes[i]}: {shares[i]:.0%} of the examples, weight {weights[i]:.3g}"
        for i in (commonest, rarest)
    )
    message = (
        f"fit's class_weight gives the frequent classes the larger weights ({shown}), so the "
        f"rarest class's share of the weighted loss falls from {shares[rarest]:.1%} to "
        f"{weighted[rarest]:.2%} and the model can ignore it (its recall near 0 while accuracy "
        "looks fine): class weights are the inverse of the counts, total / (n_classes * count), "
        'as sklearn\'s compute_class_weight("balanced") gives.'
    )
    details = {
        "classes": [int(c) for c in classes],
        "shares": [float(v) for v in shares],
        "weights": [float(v) for v in weights],
        "weighted_shares": [float(v) for v in weighted],
    }
    return [Finding("class-weights-inverted", message, step, details=details)]


def misnumbered(arguments: Mapping[str, Any], outputs: int | None, step: int) -> list[Finding]:
    """`class-weights-misnumbered` for a `class_weight` keyed one class id above the labels.

    Judged when the weights' largest key is a class the model cannot output but the one after
    the labels' largest, every label's class id plus one is a key, and the weights follow the
    classes' counts one key up (balanced, total / (n_classes * count)) but not as keyed, or
    give a class of the labels no weight at all. Weights for more classes than the model
    has, or for a class missing from this data, are not misnumbered.

    Args:
      arguments: `fit`'s arguments by name, as for `inverted`.
      outputs: The width of the model's output (1 for a sigmoid: two classes), None if unknown.
      step: The step to date the finding at.
    """
    read = _given(arguments)
    if read is None or not outputs:
        return []
    keyed, classes, counts = read
    top = max(keyed)
    if (
        top < max(outputs, 2)
        or top != classes.max() + 1
        or any(c + 1 not in keyed for c in classes)
    ):
        return []
    given = np.array([keyed.get(int(c), 1.0) for c in classes])
    meant = np.array([keyed[int(c) + 1] for c in classes])
    if not (np.any(given <= 0) or _balanced(meant, counts) and not _balanced(given, counts)):
        return []
    shares = counts / counts.sum()
    shown = "; ".join(
        f"class {classes[i]} ({shares[i]:.0%} of the examples) weighs {given[i]:.3g}, "
        f"not {meant[i]:.3g}"
        for i in range(min(len(classes), 3))
    )
    message = (
        f"fit's class_weight is numbered one above the labels: it weighs classes up to {top}, "
        f"but the labels are {classes.min()}..{classes.max()} and the model has "
        f"{max(outputs, 2)} classes, so each class gets the weight meant for the class before "
        f"it ({shown}). The weights were counted on labels numbered from 1 (a bincount or the "
        "raw ids as keys): count them on the labels fit is given, e.g. "
        'dict(enumerate(compute_class_weight("balanced", classes=np.unique(y), y=y))).'
    )
    details = {
        "classes": [int(c) for c in classes],
        "given": [float(v) for v in given],
        "meant": [float(v) for v in meant],
        "outputs": int(outputs),
    }
    return [Finding("class-weights-misnumbered", message, step, details=details)]


def _given(arguments: Mapping[str, Any]) -> tuple[dict[int, float], np.ndarray, np.ndarray] | None:
    """`fit`'s class_weight by class id, and its training labels' classes and their counts.

    None without both (a `class_weight` of numbers, labels read as class ids).
    """
    class_weight, ids = arguments.get("class_weight"), batch.class_ids(arguments.get("y"))
    if not isinstance(class_weight, Mapping) or not class_weight or ids is None:
        return None
    try:
        keyed = {int(k): float(v) for k, v in class_weight.items()}
    except (TypeError, ValueError):
        return None
    ids = batch.training_part(ids, arguments)
    classes, counts = np.unique(ids.astype(np.int64), return_counts=True)
    return keyed, classes, counts


def _balanced(weights: np.ndarray, counts: np.ndarray) -> bool:
    """Whether `weights` are in inverse proportion to `counts`, within `PROPORTIONAL`."""
    mass = weights * counts
    return bool(mass.min() > 0 and mass.max() <= PROPORTIONAL * mass.min())
