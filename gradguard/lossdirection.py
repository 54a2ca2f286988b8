"""Which way a term of a traced loss moves it, followed op by op to the loss.

A term's direction is +1 where the loss grows with it, -1 where it falls: sums, means,
reshapes and increasing functions keep it, a minus and a negative constant turn it. A product
with the labels keeps it when they are a distribution over the classes (one-hot or soft); a
product with the model's own values marks the path "weighted"; a weight per example (an
advantage, a cost, of either sign) or any op whose direction is not known stops the walk, and
the term then claims nothing (`UNKNOWN`). Used by `losssign` (the labels' likelihood raising the
loss) and `adversary` (a head trained to raise its own loss); and, strictly (only ops that never
settle, factors known to be positive), by `unbounded` (a variable the loss falls with for ever).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

__all__ = ["UNKNOWN", "constant_sign", "label_sign", "positive", "to_loss"]

# Ops through which the loss moves with their input (the direction kept): reductions, reshapes,
# selections and increasing functions. A product and a difference are judged by operand.
_KEEPING = {
    "Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Pack", "ConcatV2",
    "Sum", "Mean", "AddV2", "Add", "AddN", "BroadcastTo", "Tile", "StridedSlice", "Slice",
    "Maximum", "Minimum", "ClipByValue", "Exp", "Log", "Log1p", "Sqrt", "Softplus", "Relu",
}  # fmt: skip
_SHAPE_OF = {"Shape", "ShapeN", "Size", "Rank"}
UNKNOWN = 0


def constant_sign(tensor: tf.Tensor) -> int:
    """+1 or -1 for a constant whose values all share that sign, else `UNKNOWN` (0)."""
    source = tensor.op
    while source.type in ("Cast", "Identity") and source.inputs:
        source = source.inputs[0].op
    if source.type != "Const":
        return UNKNOWN
    values = tf.get_static_value(source.outputs[0])
    if values is None or not np.size(values):
        return UNKNOWN
    return 1 if np.all(values > 0) else -1 if np.all(values < 0) else UNKNOWN


def to_loss(
    tensor: tf.Tensor,
    start: tuple[int, bool, bool],
    loss: tf.Tensor,
    ops: set[tf.Operation],
    labels: Callable[[tf.Tensor], bool],
    strict: bool = False,
    avoid: frozenset[tf.Operation] = frozenset(),
) -> list[tuple[int, bool, bool]]:
    """(direction, labelled, weighted by the model) of every path from `tensor` to `loss`.

    ``(0, True, False)`` alone where a path's direction cannot be followed: it claims nothing.
    `strict` follows only ops that move strictly with their input, without a bound the path
    could settle at (no clipping, no ReLU), and products with factors known to be positive
    (`positive`). Paths through the ops in `avoid` are left out.
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
            if (
                consumer not in ops
                or key in seen
                or consumer.type in _SHAPE_OF
                or consumer in avoid
            ):
                continue
            seen.add(key)
            if strict:
                step = _strictly(consumer, value, state)
            else:
                step = _through(consumer, value, state, labels)
            if step is None or len(seen) > 4096:
                return [(UNKNOWN, True, False)]
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
        constant = constant_sign(other)
        if constant != UNKNOWN:
            return sign * constant, marked, weighted
        if not labels(other):  # the model's own values (p * log p)
            return sign, marked, True
        # Labels of the log-probabilities' own shape are a distribution over the classes (one-
        # hot or soft: not negative, unless negated); a weight per example may be an advantage
        # or a cost, of either sign.
        factor = label_sign(other)
        same_shape = other.shape.rank and other.shape.rank >= 2 and other.shape == value.shape
        return (sign * factor, True, weighted) if factor and same_shape else None
    if op.type in ("RealDiv", "DivNoNan") and place == 0:
        constant = constant_sign(others[0])
        return (sign * constant if constant != UNKNOWN else sign), marked, weighted
    # Values picked by class ids (a gather), or by a mask, from the log-probabilities.
    if op.type in ("GatherV2", "GatherNd") and place == 0:
        return sign, marked or labels(op.inputs[1]), weighted
    if op.type in ("SelectV2", "Select") and place > 0:
        return sign, marked or labels(op.inputs[0]), weighted
    return None


# Ops that move strictly with their input: a value followed through them alone never settles.
_STRICT = {
    "Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Pack", "ConcatV2",
    "Sum", "Mean", "AddV2", "Add", "AddN", "BroadcastTo", "Tile", "StridedSlice", "Slice",
    "GatherV2", "Exp", "Log", "Log1p", "Softplus",
}  # fmt: skip


def _strictly(
    op: tf.Operation, value: tf.Tensor, state: tuple[int, bool, bool]
) -> tuple[int, bool, bool] | None:
    """`_through` for `to_loss(strict=True)`: strictly monotone ops, factors of known sign."""
    sign, marked, weighted = state
    places = [i for i, t in enumerate(op.inputs) if t is value]
    if len(places) != 1:
        return None
    place, others = places[0], [t for t in op.inputs if t is not value]
    if op.type in _STRICT and (place == 0 or op.type not in ("GatherV2", "StridedSlice")):
        return state
    if op.type == "Neg":
        return -sign, marked, weighted
    if op.type == "Sub":
        return (sign if place == 0 else -sign), marked, weighted
    if op.type in ("Mul", "RealDiv", "DivNoNan") and (op.type == "Mul" or place == 0):
        factor = constant_sign(others[0]) or (1 if positive(others[0]) else UNKNOWN)
        return (sign * factor, marked, weighted) if factor else None
    return None


# Ops whose output is above 0, or 0 only by chance (an error squared), not by design (a ReLU,
# a hinge: a Lagrange multiplier's factor is 0 once its constraint holds); ops that keep signs.
_POSITIVE = {
    "Square", "SquaredDifference", "Abs", "Exp", "Softplus", "Sigmoid", "Softmax", "Sqrt",
    "EuclideanNorm", "SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits",
}  # fmt: skip
_SIGN_KEEPING = {
    "Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Pack", "ConcatV2",
    "Sum", "Mean", "Max", "AddV2", "Add", "AddN", "Mul", "RealDiv", "DivNoNan", "StridedSlice",
    "Slice", "GatherV2", "StopGradient", "Tile", "BroadcastTo",
}  # fmt: skip


def positive(tensor: tf.Tensor, depth: int = 0) -> bool:
    """Whether `tensor` is above 0 by construction (an error squared, a cross-entropy)."""
    op = tensor.op
    if op.type in _POSITIVE:
        return True
    if op.type == "Const":
        return constant_sign(tensor) == 1
    floating = [t for t in op.inputs if t.dtype.is_floating]
    if depth > 16 or not floating:
        return False
    return op.type in _SIGN_KEEPING and all(positive(t, depth + 1) for t in floating)


def label_sign(tensor: tf.Tensor, depth: int = 0) -> int:
    """+1 for labels as fed (or one-hot, or one minus them), -1 negated, else 0 (unknown)."""
    op = tensor.op
    if depth > 8:
        return UNKNOWN
    if op.type in ("Placeholder", "OneHot"):
        return 1
    if op.type == "Const":
        return constant_sign(tensor)
    if op.type == "Neg":
        return -label_sign(op.inputs[0], depth + 1)
    if op.type in ("Cast", "Identity", "Reshape", "ExpandDims", "Squeeze", "StridedSlice"):
        return label_sign(op.inputs[0], depth + 1)
    signs = [label_sign(t, depth + 1) for t in op.inputs[:2]]
    if op.type in ("Mul", "AddV2", "Add") and signs == [1, 1]:
        return 1  # label smoothing: y * (1 - e) + e / C
    if op.type == "Sub" and constant_sign(op.inputs[0]) == 1 and signs[1] == 1:
        return 1  # one minus the labels: a binary cross-entropy's second term
    return UNKNOWN
