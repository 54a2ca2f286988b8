"""Labels past `tf.one_hot`'s depth in a hand-written step (`labels-out-of-range`).

`tf.one_hot(labels, depth)` turns a label of `depth` or more into a row of zeros: no class to
train towards, and that example's cross-entropy is 0 with no gradient. Classes numbered from 1
(as read from a CSV) and encoded with their count as the depth lose the last class that way:
the model never predicts it, and its output 0 is never a target. Keras' `to_categorical` and a
sparse cross-entropy on the CPU raise on such labels; `tf.one_hot` does not.

Read from a hand-written step's traced loss at each trace (`Forensics.traced_loss`; `fit`
traces its function more than once): each `OneHot` op whose indices are the step's data as it
came in (through casts and reshapes only: ``y - 1`` is a choice) gets its labels' range folded
in-graph (`label_range.LabelRange`: a minimum and a maximum per step), read as classes numbered
1 to ``depth``. Labels below 0 (-1) or far past the depth (255 in segmentation masks) are "no
class" rows on purpose.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import diagnose, label_range
from gradguard.findings import Finding

__all__ = ["OneHotLabels"]

# Where a step's data enters its graph: a traced function's arguments, or fit's iterator.
_SOURCES = frozenset({"Placeholder", "IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue"})
_PASSING = frozenset({"Cast", "Identity", "Squeeze", "Reshape", "ExpandDims"})


class OneHotLabels:
    """The ranges of the raw labels the steps' one-hot encodings read, folded in-graph."""

    def __init__(self) -> None:
        self._ranges: dict[tuple[int, int], label_range.LabelRange] = {}  # (step, depth) ->

    def watch(self, key: int, loss: Any) -> None:
        """In-graph, each trace of step `key`: folds the raw labels its one-hot encodings read."""
        for op in diagnose.ancestors(loss):
            depth = tf.get_static_value(op.inputs[1]) if op.type == "OneHot" else None
            if depth is None or not _raw(op.inputs[0]):
                continue
            if (key, int(depth)) not in self._ranges:
                self._ranges[key, int(depth)] = label_range.LabelRange(_bounds(int(depth)))
            self._ranges[key, int(depth)].observe(op.inputs[0])

    def findings(self, step: int) -> list[Finding]:
        """`labels-out-of-range` for the encodings given labels past their depth (a host read)."""
        found = [(labels.judge(step), depth) for (_, depth), labels in self._ranges.items()]
        # Classes numbered 1 to depth: the last one is lost. An "ignore" label far past the
        # depth (255 in segmentation masks) or below 0 is a choice.
        return [f for f, depth in found if f is not None and f.details["labels"] == [1.0, depth]]


def _bounds(depth: int) -> label_range.Bounds:
    return label_range.Bounds(
        -np.inf,
        depth - 1.0,
        f"tf.one_hot(labels, depth={depth}) makes a row of zeros for a label of {depth} or more "
        "(no class to train towards, and no gradient)",
        f"number the classes 0 to {depth - 1} (y - 1 for classes numbered from 1)",
    )


def _raw(tensor: tf.Tensor) -> bool:
    """Whether `tensor` is the step's input data, cast or reshaped at most."""
    op = tensor.op
    while op.type in _PASSING and op.inputs:
        op = op.inputs[0].op
    return op.type in _SOURCES
