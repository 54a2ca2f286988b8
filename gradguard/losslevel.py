"""The levels a traced loss shows: the floor it cannot go below, the chance level it starts at.

For code gradguard did not write (the guard, ``gradguard run``), whose labels are not seen: read
from the traced loss once per trace, and judged by `LossNotDecreasing` (``Context.notes``).
"""

from __future__ import annotations

import math
import re

import tensorflow as tf

from gradguard.diagnose import SOFTMAX_CROSS_ENTROPY, reads_variables

__all__ = ["cross_entropy_labels", "graph_chance", "graph_loss_floor"]


# Ops that average a per-example loss into the batch's: a mean, or a sum over a count.
_REDUCING = {"Mean", "Sum", "RealDiv", "DivNoNan", "Identity", "Cast", "Reshape", "Squeeze"}


def graph_loss_floor(loss: tf.Tensor) -> float | None:
    """0.0 for a traced loss that is a binary cross-entropy, summed or averaged.

    Followed from the loss back through reductions only to the cross-entropy itself: a Keras
    `BinaryCrossentropy` on probabilities (its final ``binary_crossentropy/Neg``) or on logits
    (Keras takes a sigmoid output's logits), or ``tf.nn.sigmoid_cross_entropy_with_logits``
    (both a ``logistic_loss`` op). With labels in [0, 1] (probabilities) it cannot go below 0;
    labels of -1 and 1 make it fall below 0 without limit (`LossNotDecreasing`). A penalty
    added or weights multiplied in claim no floor.
    """
    op = loss.op
    while op.type in _REDUCING and op.inputs:
        op = op.inputs[0].op
    name = op.name.rsplit("/", 1)[-1]
    logistic = op.type == "AddV2" and re.fullmatch(r"logistic_loss(_\d+)?", name) is not None
    entropy = op.type == "Neg" and op.name.endswith("binary_crossentropy/Neg")
    return 0.0 if logistic or entropy else None


def graph_chance(loss: tf.Tensor) -> float | None:
    """The chance level ln C of a traced loss that averages a C-class softmax cross-entropy.

    For code gradguard did not write, whose labels are not seen on the host: followed from the
    loss back through averaging ops only (a mean, or a sum divided by a count) to a
    ``*SoftmaxCrossEntropyWithLogits`` op. Anything else on the way (a penalty added, sample
    weights multiplied in) claims no level, nor do soft targets computed from variables (a
    teacher's, in distillation: the best loss is their entropy, which can lie just below
    ln C). Classes are taken as balanced: ln C is the most a model that ignores its inputs
    scores; the owner may count the labels (`cross_entropy_labels`) for their frequencies.
    """
    found = cross_entropy_labels(loss)
    return math.log(found[2]) if found is not None else None


def cross_entropy_labels(loss: tf.Tensor) -> tuple[tf.Tensor, str, int] | None:
    """(labels, Keras loss name, classes) of the cross-entropy `graph_chance` reads, or None."""
    op, divided = loss.op, False
    while op.type not in SOFTMAX_CROSS_ENTROPY:
        # A sum is an average only under a division: `reduce_sum(ce)` alone is B times ln C.
        if op.type not in _REDUCING or not op.inputs or (op.type == "Sum" and not divided):
            return None
        divided |= op.type in ("RealDiv", "DivNoNan")
        op = op.inputs[0].op  # (a division's numerator; a reduction's values)
    if op.type == "SoftmaxCrossEntropyWithLogits" and reads_variables(op.inputs[1]):
        return None  # a teacher's soft targets (distillation): the best loss is their entropy
    classes = op.inputs[0].shape[-1] if op.inputs[0].shape.rank else None
    if not classes or classes < 2:
        return None
    sparse = op.type.startswith("Sparse")
    name = "sparse_categorical_crossentropy" if sparse else "categorical_crossentropy"
    return op.inputs[1], name, int(classes)
