"""Raw labels a hand-written loss reads in a form their values break (`labels-out-of-range`).

* `tf.one_hot(labels, depth)` turns a label of `depth` or more into a row of zeros: no class
  to train towards, and that example's cross-entropy is 0 with no gradient. Classes numbered
  from 1 (as read from a CSV) and encoded with their count as the depth lose the last class
  that way: the model never predicts it, and its output 0 is never a target. Keras'
  `to_categorical` and a sparse cross-entropy on the CPU raise on such labels; `tf.one_hot`
  does not. Found for labels ranging over exactly 1 to `depth`: -1, or 255 in a segmentation
  mask, as a "no class" row is a choice.
* A hinge loss ``max(0, 1 - y * f)`` needs labels -1 and +1. With 0 and 1 each example of
  label 0 adds a constant 1 with no gradient: the model learns from the positives only, and
  pushing every output up satisfies them. (`keras.losses.Hinge` converts 0/1 labels itself.)
  Found for labels ranging over exactly 0 to 1.
* A sparse cross-entropy casts its labels to integer class ids, dropping any fraction: labels
  scaled with the features (a whole table min-max scaled: classes 0..3 become 0, 0.33, 0.67,
  1) collapse to class 0 but for the last (held-out accuracy 0.26 against 0.96). Found for
  float labels with a fractional part.
* A loss that reads box labels as corners ``(x1, y1, x2, y2)``, given center-and-size boxes,
  takes the size as the far corner: most boxes inverted (`corners`, which counts them).

Read from a step's traced loss at each trace (`Forensics.traced_loss`; `fit` traces its
function more than once): the labels such an op reads straight from the step's data (through
casts and reshapes only: ``y - 1``, ``2 * y - 1`` are choices) have their range (or their
fractional parts') folded in-graph (`label_range.LabelRange`: a minimum and a maximum per
step), judged at reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from gradguard import corners, diagnose, label_range
from gradguard.diagnose import DATA_SOURCES, VIEWS, before_views, scalar_constant
from gradguard.findings import Finding, number

__all__ = ["RawLabels"]

_WHOLE = 1e-6  # a class id's largest fractional part (a float's round-off in 0..C - 1)


class RawLabels:
    """The ranges of the raw labels the steps' encodings, hinges and cross-entropies read."""

    def __init__(self) -> None:
        # (step, "one_hot" or "hinge", depth or 0) -> the range of the labels it reads.
        self._ranges: dict[tuple[int, str, int], label_range.LabelRange] = {}
        # (step, the lengths' columns) -> the boxes a loss reads as corners (`corners`).
        self._boxes: dict[tuple[int, Any], corners.InvertedBoxes] = {}

    def watch(self, key: int, loss: Any) -> None:
        """In-graph, each trace of step `key`: folds the raw labels `loss` reads so."""
        ops = diagnose.ancestors(loss)
        for found in corners.lengths(ops).values():
            columns = [(hi[1], lo[1]) for _, hi, lo in found]
            boxes = self._boxes.setdefault((key, tuple(columns)), corners.InvertedBoxes(columns))
            boxes.observe(found)
        for op in ops:
            for kind, depth, labels in _reads(op):
                where = (key, kind, depth)
                if where not in self._ranges:
                    self._ranges[where] = label_range.LabelRange(label_range.Bounds())
                self._ranges[where].observe(labels)

    def findings(self, step: int) -> list[Finding]:
        """`labels-out-of-range` for the labels that break the op reading them (a host read)."""
        found = []
        for (_, kind, depth), labels in self._ranges.items():
            low, high = labels.extent()
            details = {"labels": [low, high]}
            if kind == "one_hot" and (low, high) == (1, depth):
                message = (
                    f"The labels range over [1, {depth}] into tf.one_hot(labels, "
                    f"depth={depth}), which makes a row of zeros for the label {depth} (no "
                    "class to train towards, and no gradient): that class is never learned. "
                    f"Number the classes 0 to {depth - 1} (y - 1)."
                )
            elif kind == "hinge" and (low, high) == (0, 1):
                message = (
                    f"A hinge loss max(0, 1 - y * f) reads labels of {number(low)} and "
                    f"{number(high)}: each example of label 0 adds a constant 1 with no "
                    "gradient, so the model learns from the positives only. A hinge needs "
                    "labels -1 and +1 (2 * y - 1), or keras.losses.Hinge, which converts 0/1."
                )
            elif kind == "class_ids" and high > _WHOLE:
                details = {"fractions": [low, high]}  # (not the labels' own range)
                message = (
                    "The labels a sparse cross-entropy reads are not whole numbers (fractional "
                    f"parts up to {number(high)}): it casts them to class ids, dropping the "
                    "fraction, so labels such as 0.33 and 0.67 both train towards class 0. "
                    "Were the labels scaled with the features (a min-max or standard scaling "
                    "of the whole table), or a segmentation mask resized by interpolation "
                    "(tf.image.resize's default bilinear: use method='nearest')? Keep the class "
                    "ids whole, numbered 0 to C - 1."
                )
            else:
                continue
            found.append(Finding("labels-out-of-range", message, step, details=details))
        inverted = [boxes.finding(step) for boxes in self._boxes.values()]
        return found + [finding for finding in inverted if finding is not None]


def _reads(op: tf.Operation) -> Iterator[tuple[str, int, tf.Tensor]]:
    """What `op` reads of the step's raw labels (of a sparse cross-entropy: the fractions)."""
    if op.type == "SparseSoftmaxCrossEntropyWithLogits":
        labels = _float_labels(op)
        if labels is not None:
            yield "class_ids", 0, labels - tf.floor(labels)
    if op.type == "OneHot":
        depth = tf.get_static_value(op.inputs[1])
        if depth is not None and _raw(op.inputs[0]):
            yield "one_hot", int(depth), op.inputs[0]
    margin = diagnose.hinge_argument(op)  # the hinge's 1 - y * f
    if margin is None or margin.op.type != "Sub" or scalar_constant(margin.op.inputs[0]) != 1:
        return
    product = margin.op.inputs[1].op
    if product.type == "Mul":
        yield from (("hinge", 0, t) for t in product.inputs if _raw(t))


def _float_labels(loss: tf.Operation) -> tf.Tensor | None:
    """The step's float data a sparse cross-entropy `loss` cast to class ids itself, if it did.

    The first cast above the ids must be the one from floats, made inside the loss's own name
    scope (a Keras loss's), and the floats the step's data through reshapes and float casts
    only: labels the code cast to integers itself (``tf.cast(age, tf.int32)``, a floor on
    purpose) reach the loss whole.
    """
    op = before_views(loss.inputs[1], VIEWS - {"Cast"}).op
    scope = op.name.rpartition("/")[0]
    if op.type != "Cast" or not op.inputs[0].dtype.is_floating:
        return None
    if not scope or not loss.name.startswith(scope + "/"):
        return None
    labels = tensor = op.inputs[0]
    while tensor.op.type in VIEWS:
        tensor = tensor.op.inputs[0]
        if not tensor.dtype.is_floating:
            return None  # (integers cast to floats: whole)
    return labels if tensor.op.type in DATA_SOURCES else None


def _raw(tensor: tf.Tensor) -> bool:
    """Whether `tensor` is the step's input data, cast or reshaped at most."""
    return before_views(tensor).op.type in DATA_SOURCES
