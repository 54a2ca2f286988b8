"""The levels a traced loss shows: its floor, its chance level, and whether it measures learning.

The floor it cannot go below, the chance level it starts at, and whether its trend says anything
of learning at all (not a policy gradient's surrogate, nor a TD error against a target network).
For code gradguard did not write (the guard, ``gradguard run``), whose labels are not seen: read
from the traced loss once per trace, and judged by `LossNotDecreasing` (``Context.notes``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import tensorflow as tf

from gradguard import losssign
from gradguard.diagnose import (
    COMPARISONS,
    SOFTMAX_CROSS_ENTROPY,
    ancestors,
    descendants,
    is_data,
    reads_variables,
    reduces_all,
    variable_placeholders,
)

__all__ = [
    "cross_entropy_labels",
    "graph_batch_sum",
    "graph_chance",
    "graph_loss_floor",
    "graph_moving_target",
    "graph_surrogate",
    "graph_trend_uninformative",
]


# Ops that average a per-example loss into the batch's: a mean, or a sum over a count.
_REDUCING = {"Mean", "Sum", "RealDiv", "DivNoNan", "Identity", "Cast", "Reshape", "Squeeze"}


def graph_loss_floor(loss: tf.Tensor) -> float | None:
    """0.0 for a traced loss that is a binary cross-entropy, summed or averaged.

    Followed from the loss back through reductions only to the cross-entropy itself: a Keras
    `BinaryCrossentropy` on probabilities (its final ``binary_crossentropy/Neg``) or on logits
    (Keras takes a sigmoid output's logits), or ``tf.nn.sigmoid_cross_entropy_with_logits``
    (both a ``logistic_loss`` op; not given the model's output as its labels: swapped, told by
    `lossgraph`). With labels in [0, 1] (probabilities) it cannot go below 0;
    labels of -1 and 1 make it fall below 0 without limit (`LossNotDecreasing`). A penalty
    added or weights multiplied in claim no floor.
    """
    op = loss.op
    while op.type in _REDUCING and op.inputs:
        op = op.inputs[0].op
    entropy = op.type == "Neg" and op.name.endswith("binary_crossentropy/Neg")
    logistic = logistic_inputs(op)
    if logistic is not None:  # (its labels the model's output, its logits data: swapped)
        logits, labels = logistic
        logistic = None if reads_variables(labels) and not reads_variables(logits) else logistic
    return 0.0 if logistic is not None or entropy else None


def logistic_inputs(op: tf.Operation) -> tuple[tf.Tensor, tf.Tensor] | None:
    """The (logits, labels) of `op` if it is ``tf.nn.sigmoid_cross_entropy_with_logits``' sum.

    Its ``logistic_loss`` op, ``relu(z) - z * y + log1p(exp(-abs(z)))``, whose product
    ``logistic_loss/mul`` reads the logits and the labels in that order.
    """
    if op.type != "AddV2" or not re.fullmatch(r"logistic_loss(_\d+)?", op.name.rsplit("/")[-1]):
        return None
    try:
        logits, labels = op.graph.get_operation_by_name(f"{op.name}/mul").inputs
    except KeyError:  # (another TensorFlow's insides: no product of that name)
        return None
    return logits, labels


def graph_batch_sum(loss: tf.Tensor) -> str | None:
    """The examples a traced loss adds up, when it is their sum: ``"512 examples"``.

    ``tf.reduce_sum`` over every axis of values with a batch axis (per-example losses, squared
    errors), not divided by a count before or after (a mean, `compute_average_loss`): its gradient
    grows with the batch, and a learning rate meant for a mean is that many times too large.
    ``"the batch"`` when its size is not known when traced. Named by `exploding-gradient`.
    """
    op = loss.op
    while op.type == "Identity" and op.inputs:
        op = op.inputs[0].op
    if op.type != "Sum" or not reduces_all(op) or op.inputs[0].shape.rank is None:
        return None
    if op.inputs[0].op.type in ("RealDiv", "DivNoNan", "Mul"):
        return None  # (values scaled before the sum: ``reduce_sum(err ** 2 / B)`` is a mean)
    rows = op.inputs[0].shape[0] if op.inputs[0].shape.rank else 1
    if rows is not None and rows < 2:
        return None
    return "the batch" if rows is None else f"{rows} examples"


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


# Between a probability and its log: a pick of the actions taken, Keras' clipping, an epsilon.
_TO_LOG = {"GatherV2", "GatherNd", "AddV2", "Add", "Maximum", "Minimum", "ClipByValue", "Identity"}


def graph_trend_uninformative(loss: tf.Tensor, variables: Iterable[Any]) -> bool:
    """Whether `loss`'s trend says nothing of learning: a surrogate's, or a moving target's."""
    variables = list(variables)
    return graph_surrogate(loss, variables) or graph_moving_target(loss, variables)


def graph_surrogate(loss: tf.Tensor, variables: Iterable[Any]) -> bool:
    """Whether `loss` weighs the trained model's log-probabilities per example by data.

    A policy gradient's surrogate, ``-sum(log p(a) * G)``: its value follows the returns `G`,
    which grow as episodes get longer while the policy learns, so its trend says nothing of
    learning. The weight is data (a step input) with one value per example, not a mask made by
    a comparison, nor labels of the log-probabilities' own shape (one-hot, soft).
    """
    ops = ancestors(loss)
    is_output = losssign.trained_layer(loss.graph, variables)
    made = set().union(*(descendants(op.outputs[0]) for op in ops if is_output(op)))
    stack = [op.outputs[0] for op in ops if op in made and _log_probability(op)]
    seen = set[tf.Operation]()
    while stack:
        value = stack.pop()
        for consumer in value.consumers():
            if consumer not in ops or consumer in seen:
                continue
            seen.add(consumer)
            weight = [t for t in consumer.inputs if t is not value]
            if consumer.type == "Mul" and len(weight) == 1 and _per_example_data(weight[0], made):
                rank = weight[0].shape.rank  # (a scalar fed is a coefficient, not a weight)
                if rank and (rank == 1 or weight[0].shape != value.shape):
                    return True
            stack += consumer.outputs
    return False


def graph_moving_target(loss: tf.Tensor, variables: Iterable[Any]) -> bool:
    """Whether `loss` holds the trained model's output against what another network computes.

    A TD target ``r + gamma * V_target(s')`` from a target network: the loss's level moves as
    that network is synced and its values grow towards the returns, so it may rise while the
    values converge (hunt29 h04: sixfold, the values within 0.17 of the true ones), and its
    trend says nothing of learning. A difference (``Sub``, ``SquaredDifference``: a squared
    error, Huber's) one side of which reads the trained `variables`, the other only variables
    they do not hold; a frozen base under a trained head meets it in a product, not here.
    """
    ops = ancestors(loss)
    placeholders = variable_placeholders(loss.graph, list(variables))
    trained = {p.op for p in placeholders if getattr(p, "graph", None) is loss.graph}
    if all(op.inputs[0].op in trained for op in ops if op.type == "ReadVariableOp"):
        return False  # (every variable read is trained: no other network)

    def reads(tensor: tf.Tensor) -> set[bool]:  # per variable read, whether it is trained
        made = ancestors(tensor)
        return {op.inputs[0].op in trained for op in made if op.type == "ReadVariableOp"}

    for op in ops:
        if op.type in ("Sub", "SquaredDifference") and len(op.inputs) == 2:
            left, right = (reads(t) for t in op.inputs)
            if (True in left and right == {False}) or (True in right and left == {False}):
                return True
    return False


def _log_probability(op: tf.Operation) -> bool:
    """A softmax cross-entropy, a log-softmax, or the log of a softmax or sigmoid."""
    if op.type in SOFTMAX_CROSS_ENTROPY or op.type == "LogSoftmax":
        return True
    source = op.inputs[0].op if op.type == "Log" else None
    for _ in range(6):
        if source is None or source.type in ("Softmax", "Sigmoid"):
            break
        source = source.inputs[0].op if source.type in _TO_LOG and source.inputs else None
    return source is not None


def _per_example_data(tensor: tf.Tensor, made: set[tf.Operation]) -> bool:
    """Whether `tensor` is data the model did not make, and not a comparison's 0/1 mask."""
    if tensor.op in made or not is_data(tensor):
        return False
    op = tensor.op
    while op.type in ("Cast", "Identity", "ExpandDims", "Reshape") and op.inputs:
        op = op.inputs[0].op
    return op.type not in COMPARISONS
