"""Whether a traced loss grows with the labels' likelihood, cosine or overlap (`loss-sign-flipped`).

A cross-entropy is the negative log-likelihood of the labels: written by hand it needs a minus,
``-sum(y * log p)``. Without it, minimizing the loss makes the labels less likely: the loss
falls without limit and the model learns the opposite of the data, while every other signal
looks healthy.

Read from a traced loss, once per trace: each log-probability the model's trained layer gives
(a ``LogSoftmax``, a ``Log`` of a softmax or sigmoid, a softmax cross-entropy op) is followed
to the loss through ops whose direction is known (sums, means, reshapes, slices, a product with
a constant, a minus). Only the labels' log-likelihood counts: log-probabilities picked by class
ids, or multiplied by labels of their own shape (one-hot or soft, signs followed through a
minus). A weight per example (a policy gradient's returns, or costs, minimized with a plus on
purpose) has a sign the graph cannot tell: it claims nothing. An entropy bonus (``p * log p``)
and a distilled teacher's targets are not the labels' likelihood; only the model being trained
counts (the logits come from a layer whose kernel this update trains), so a GAN generator
minimizing the discriminator's log-likelihood of "fake" stays silent. A loss with a term in
each direction (adversarial domain adaptation, a complementary-label estimator's sum over all
classes) claims nothing, nor does any term whose direction cannot be followed.

A cosine similarity of the labels and the trained model's output (their product, each scaled
to unit length) is followed the same way: a loss that grows with it turns the predictions away
from the labels. Keras' `cosine_similarity` is already negated, and ``1 -`` it flips it back.
So is the overlap ``y * p`` of the labels and the model's probabilities (``loss=dice_coef``,
not ``1 - dice_coef``); an IoU's union holds it in a divisor, not followed: it claims nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard.diagnose import (
    SOFTMAX_CROSS_ENTROPY,
    descendants,
    is_data,
    variable_placeholders,
)
from gradguard.findings import Finding

__all__ = ["graph_loss_sign", "trained_layer"]

# Ops through which the loss moves with their input (the direction kept): reductions, reshapes,
# selections and increasing functions. A product and a difference are judged by operand.
_KEEPING = {
    "Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Pack", "ConcatV2",
    "Sum", "Mean", "AddV2", "Add", "AddN", "BroadcastTo", "Tile", "StridedSlice", "Slice",
    "Maximum", "Minimum", "ClipByValue", "Exp", "Log", "Log1p", "Sqrt", "Softplus", "Relu",
}  # fmt: skip
# Between a layer's output and a log-probability: a bias, an activation, one head's slice,
# Keras' clipping and renormalization, the `1 - p` of a binary cross-entropy's second term.
_TOWARD_OUTPUT = {
    "Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "BiasAdd", "AddV2", "Add", "Sub",
    "Softmax", "Sigmoid", "LogSoftmax", "Minimum", "Maximum", "ClipByValue", "RealDiv",
    "StridedSlice", "Slice",
}  # fmt: skip
_PRODUCTS = {"MatMul", "BatchMatMulV2", "Einsum", "Conv2D", "Conv1D"}
_KINDS = ("likelihood", "cosine", "overlap")  # what a term grows with (`graph_loss_sign`)
_SHAPE_OF = {"Shape", "ShapeN", "Size", "Rank"}
_UNKNOWN = 0


def trained_layer(graph: Any, variables: Iterable[Any]) -> Callable[[tf.Operation], bool]:
    """A test of ops in `graph`: a product with one of `variables` (a layer this update trains)."""
    placeholders = variable_placeholders(graph, list(variables))
    trained = {p.op for p in placeholders if getattr(p, "graph", None) is graph}

    def is_trained(op: tf.Operation) -> bool:
        if op.type not in _PRODUCTS:
            return False
        for tensor in op.inputs:
            source = tensor.op
            while source.type in ("Cast", "Identity") and source.inputs:
                source = source.inputs[0].op
            if source.type == "ReadVariableOp" and source.inputs[0].op in trained:
                return True
        return False

    return is_trained


def graph_loss_sign(
    loss: tf.Tensor, ops: set[tf.Operation], is_output: Callable[[tf.Operation], bool], step: int
) -> Finding | None:
    """`loss-sign-flipped`: every labelled log-likelihood in `loss` raises it (see the module).

    Args:
      loss: The traced scalar loss.
      ops: The ops `loss` is computed from.
      is_output: Whether an op makes the trained model's output (`trained_layer`).
      step: The step the finding is dated.
    """
    # Data is what the step is fed and the model did not make (its output is fed too when a
    # loss function is traced alone).
    made = set().union(*(descendants(op.outputs[0]) for op in ops if is_output(op)))

    def labels(tensor: tf.Tensor) -> bool:
        return tensor.op not in made and is_data(tensor)

    directions, kinds = [], {}
    for op in ops:
        for kind, find in zip(_KINDS, (_log_likelihood, _cosine, _overlap)):
            source = find(op, is_output, labels)
            if source is not None:
                kinds[op] = kind
                break
        if source is None:
            continue
        tensor, direction, labelled = source
        for path_direction, path_labelled, weighted in _to_loss(
            tensor, (direction, labelled, False), loss, ops, labels
        ):
            # The labels' log-likelihood; and, against it, log-probabilities summed over the
            # classes with constant weights (a complementary-label estimator's counter-term).
            if path_labelled or (not weighted and path_direction != 1):
                directions.append((path_direction, op))
    if not directions or any(direction != 1 for direction, _ in directions):
        return None
    source_op = directions[0][1]
    term = source_op.name
    if kinds[source_op] == "overlap":
        message = (
            f"The loss grows with the overlap of the predicted probabilities and the labels "
            f"({term}, their product summed): a Dice or IoU coefficient, a score where higher is "
            "better, minimized as it is, so the predictions are turned away from the labels "
            "while the loss falls. Minimize 1 - dice_coef(y_true, y_pred), not dice_coef."
        )
    elif kinds[source_op] == "cosine":
        message = (
            f"The loss grows with the cosine similarity of the predictions to the labels "
            f"({term}), so minimizing it turns the predictions away from them (toward a "
            "cosine of -1) while the loss falls. keras.losses.cosine_similarity is already "
            "negated (-1 for a perfect match): minimize it as it is, or 1 + it, not 1 - it."
        )
    else:
        message = (
            f"The loss grows with the log-probability the model gives the labels ({term}): it "
            "is their log-likelihood, not its negative, so minimizing it makes the labels less "
            "likely, and the loss falls without limit while the model learns the opposite. A "
            "cross-entropy takes a minus: "
            "-tf.reduce_mean(tf.reduce_sum(y * tf.math.log(p), -1)), or use a keras.losses "
            "cross-entropy as it is."
        )
    return Finding("loss-sign-flipped", message, step, details={"term": term})


def _log_likelihood(
    op: tf.Operation,
    is_output: Callable[[tf.Operation], bool],
    labels: Callable[[tf.Tensor], bool],
) -> tuple[tf.Tensor, int, bool] | None:
    """(tensor, its direction in the log-likelihood, labelled) of a log-probability op, or None.

    A ``LogSoftmax``, or a ``Log``/``Xlogy`` of a softmax or sigmoid (or one minus it), of the
    trained model's output: +1. A softmax cross-entropy op is already negated: -1, labelled by
    its labels when they are data.
    """
    if op.type in SOFTMAX_CROSS_ENTROPY:
        if not _from_output(op.inputs[0], is_output, allow_log=True):
            return None
        return op.outputs[0], -1, labels(op.inputs[1])
    if op.type == "LogSoftmax" and _from_output(op.inputs[0], is_output):
        return op.outputs[0], 1, False
    if op.type in ("Log", "Xlogy") and _probability_of_output(op.inputs[-1], is_output):
        labelled = op.type == "Xlogy" and labels(op.inputs[0])
        return op.outputs[0], 1, labelled
    return None


def _cosine(
    op: tf.Operation,
    is_output: Callable[[tf.Operation], bool],
    labels: Callable[[tf.Tensor], bool],
) -> tuple[tf.Tensor, int, bool] | None:
    """(the product, +1, labelled) of a cosine similarity of the labels and the model's output.

    The product of the two, each scaled to unit length (`_normalized`), which a cosine loss
    sums: Keras' `cosine_similarity` negates it, ``1 - cos`` written by hand subtracts it.
    """
    if op.type != "Mul":
        return None
    unit = [_normalized(t) for t in op.inputs]
    for label, output in (unit, unit[::-1]):
        if label is not None and output is not None and labels(label) and not _sliced(label):
            if _from_output(output, is_output):
                return op.outputs[0], 1, True
    return None


def _overlap(
    op: tf.Operation,
    is_output: Callable[[tf.Operation], bool],
    labels: Callable[[tf.Tensor], bool],
) -> tuple[tf.Tensor, int, bool] | None:
    """(the product, +1, labelled) of labels and the probabilities the model gives them.

    ``y_true * y_pred`` of a softmax or sigmoid output and labels of its shape: the overlap a
    Dice coefficient sums, which grows as the predictions match the labels.
    """
    if op.type != "Mul" or op.inputs[0].shape != op.inputs[1].shape:
        return None
    for label, output in (op.inputs, op.inputs[::-1]):
        marked = labels(label) and _label_sign(label) == 1 and (label.shape.rank or 0) >= 2
        if marked and not _sliced(label) and _probability_of_output(output, is_output):
            return op.outputs[0], 1, True
    return None


def _sliced(tensor: tf.Tensor) -> bool:
    """Whether `tensor` is a part of the labels, not the labels as fed."""
    # (A hard negative packed beside the target, which a margin term pushes the output from.)
    op = tensor.op
    for _ in range(8):
        if op.type in ("StridedSlice", "Slice", "Split", "SplitV", "Unpack", "GatherV2"):
            return True
        if op.type not in ("Identity", "Cast", "Reshape", "ExpandDims", "Squeeze") or not op.inputs:
            return False
        op = op.inputs[0].op
    return False


# Between a vector and the scale that makes it unit length: a sum of its squares, a root.
_NORM = {
    "Rsqrt", "Sqrt", "Reciprocal", "Maximum", "Minimum", "Sum", "AddV2", "Add", "Identity",
    "Cast", "ExpandDims", "Reshape",
}  # fmt: skip


def _normalized(tensor: tf.Tensor) -> tf.Tensor | None:
    """The vector `tensor` is the unit-length form of (``x * rsqrt(sum(x**2))``, ``x / norm``)."""
    op = tensor.op
    if op.type == "Mul":
        pairs = [(op.inputs[0], op.inputs[1]), (op.inputs[1], op.inputs[0])]
    elif op.type == "RealDiv":
        pairs = [(op.inputs[0], op.inputs[1])]
    else:
        return None
    for vector, scale in pairs:

        def squares(o: tf.Operation, x: tf.Tensor = vector) -> bool:
            if o.type in ("Square", "EuclideanNorm"):
                return o.inputs[0] is x
            return o.type == "Mul" and o.inputs[0] is x and o.inputs[1] is x

        if _back_to(scale, squares, lambda o: o.type in _NORM) is not None:
            return vector
    return None


def _probability_of_output(tensor: tf.Tensor, is_output: Callable[[tf.Operation], bool]) -> bool:
    """Whether `tensor` is a softmax or sigmoid (or one minus it) of the model's output."""
    squashing = _back_to(
        tensor,
        lambda op: op.type in ("Softmax", "Sigmoid"),
        lambda op: op.type in _TOWARD_OUTPUT and op.type not in ("LogSoftmax", "BiasAdd"),
    )
    return squashing is not None and _from_output(squashing.inputs[0], is_output)


def _from_output(
    tensor: tf.Tensor, is_output: Callable[[tf.Operation], bool], allow_log: bool = False
) -> bool:
    """Whether `tensor` is the trained model's output (through a bias, reshapes, clipping)."""
    # Keras' sparse cross-entropy on probabilities hands their log to the logits op.
    found = _back_to(
        tensor, is_output, lambda op: op.type in _TOWARD_OUTPUT or (allow_log and op.type == "Log")
    )
    return found is not None


def _back_to(
    tensor: tf.Tensor,
    target: Callable[[tf.Operation], bool],
    through: Callable[[tf.Operation], bool],
) -> tf.Operation | None:
    """The first op `target` holds for, back from `tensor` through ops `through` lets pass."""
    stack, seen = [tensor.op], set[tf.Operation]()
    while stack:
        op = stack.pop()
        if op in seen or len(seen) > 16:  # a few ops: a bias, an activation, Keras' clipping
            continue
        seen.add(op)
        if target(op):
            return op
        if through(op):
            stack += [t.op for t in op.inputs if t.dtype.is_floating]
    return None


def _constant_sign(tensor: tf.Tensor) -> int:
    """+1 or -1 for a constant whose values all share that sign, else `_UNKNOWN` (0)."""
    source = tensor.op
    while source.type in ("Cast", "Identity") and source.inputs:
        source = source.inputs[0].op
    if source.type != "Const":
        return _UNKNOWN
    values = tf.get_static_value(source.outputs[0])
    if values is None or not np.size(values):
        return _UNKNOWN
    return 1 if np.all(values > 0) else -1 if np.all(values < 0) else _UNKNOWN


def _to_loss(
    tensor: tf.Tensor,
    start: tuple[int, bool, bool],
    loss: tf.Tensor,
    ops: set[tf.Operation],
    labels: Callable[[tf.Tensor], bool],
) -> list[tuple[int, bool, bool]]:
    """(direction, labelled, weighted by the model) of every path from `tensor` to `loss`.

    ``(0, True, False)`` alone where a path's direction cannot be followed: it claims nothing.
    """
    reached: list[tuple[int, bool, bool]] = []
    # (A path is known by the value an op takes, not the op alone: the two sides of a
    # difference, a preference loss's chosen and rejected log-probabilities, arrive at one op.)
    seen: set[tuple[tf.Operation, tf.Operation, int, tuple[int, bool, bool]]] = set()
    stack = [(tensor, start)]
    while stack:
        value, state = stack.pop()
        if value is loss or value.op is loss.op:
            reached.append(state)
            continue
        for consumer in value.consumers():
            key = (consumer, value.op, value.value_index, state)
            # (A shape read for a mean's count, the batch's size unknown, is not the value.)
            if consumer not in ops or key in seen or consumer.type in _SHAPE_OF:
                continue
            seen.add(key)
            step = _through(consumer, value, state, labels)
            if step is None or len(seen) > 4096:
                return [(_UNKNOWN, True, False)]
            stack += [(out, step) for out in consumer.outputs]
    return reached


def _through(
    op: tf.Operation,
    value: tf.Tensor,
    state: tuple[int, bool, bool],
    labels: Callable[[tf.Tensor], bool],
) -> tuple[int, bool, bool] | None:
    """The path's state after `op` takes `value`; None where its direction cannot be told."""
    sign, marked, weighted = state
    places = [i for i, t in enumerate(op.inputs) if t is value]
    if len(places) != 1:
        return None  # a value met with itself (a square)
    place, others = places[0], [t for t in op.inputs if t is not value]
    if op.type in _KEEPING:
        return state
    if op.type == "Neg":
        return -sign, marked, weighted
    if op.type == "Sub":
        return (sign if place == 0 else -sign), marked, weighted
    if op.type == "Mul":
        other = others[0]
        if not labels(other):  # a constant, or the model's own values (p * log p)
            constant = _constant_sign(other)
            if constant != _UNKNOWN:
                return sign * constant, marked, weighted
            return sign, marked, True
        # Labels of the log-probabilities' own shape are a distribution over the classes (one-
        # hot or soft: not negative, unless negated); a weight per example may be an advantage
        # or a cost, of either sign.
        factor = _label_sign(other)
        same_shape = other.shape.rank and other.shape.rank >= 2 and other.shape == value.shape
        return (sign * factor, True, weighted) if factor and same_shape else None
    if op.type in ("RealDiv", "DivNoNan") and place == 0:
        constant = _constant_sign(others[0])
        return (sign * constant if constant != _UNKNOWN else sign), marked, weighted
    # Values picked by class ids (a gather), or by a mask, from the log-probabilities.
    if op.type in ("GatherV2", "GatherNd") and place == 0:
        return sign, marked or labels(op.inputs[1]), weighted
    if op.type in ("SelectV2", "Select") and place > 0:
        return sign, marked or labels(op.inputs[0]), weighted
    return None


def _label_sign(tensor: tf.Tensor, depth: int = 0) -> int:
    """+1 for labels as fed (or one-hot, or one minus them), -1 negated, else 0 (unknown)."""
    op = tensor.op
    if depth > 8:
        return _UNKNOWN
    if op.type in ("Placeholder", "OneHot"):
        return 1
    if op.type == "Const":
        return _constant_sign(tensor)
    if op.type == "Neg":
        return -_label_sign(op.inputs[0], depth + 1)
    if op.type in ("Cast", "Identity", "Reshape", "ExpandDims", "Squeeze", "StridedSlice"):
        return _label_sign(op.inputs[0], depth + 1)
    signs = [_label_sign(t, depth + 1) for t in op.inputs[:2]]
    if op.type in ("Mul", "AddV2", "Add") and signs == [1, 1]:
        return 1  # label smoothing: y * (1 - e) + e / C
    if op.type == "Sub" and _constant_sign(op.inputs[0]) == 1 and signs[1] == 1:
        return 1  # one minus the labels: a binary cross-entropy's second term
    return _UNKNOWN
