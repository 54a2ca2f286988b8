"""Whether a traced loss grows with the labels' likelihood, cosine or overlap (`loss-sign-flipped`).

A cross-entropy is the negative log-likelihood of the labels: written by hand it needs a minus,
``-sum(y * log p)``. Without it, minimizing the loss makes the labels less likely: the loss
falls without limit and the model learns the opposite of the data, while every other signal
looks healthy.

Read from a traced loss, once per trace: each log-probability the model's trained layer gives (a
``LogSoftmax``, a ``Log`` of a softmax or sigmoid, a softmax or sigmoid cross-entropy on logits) is
followed to the loss through ops whose direction is known (sums, means, reshapes, slices, a product
with a constant, a minus: `lossdirection`). Only the labels' log-likelihood counts:
log-probabilities picked by class ids, or multiplied by labels of their own shape (one-hot or soft,
signs followed through a minus). A weight per example (a policy gradient's returns, or costs,
minimized with a plus on purpose) has a sign the graph cannot tell: it claims nothing. An entropy
bonus (``p * log p``) and a distilled teacher's targets are not the labels' likelihood; only the
model being trained counts (the logits come from a layer whose kernel this update trains), so a GAN
generator minimizing the discriminator's log-likelihood of "fake" stays silent. A loss with a term
in each direction (adversarial domain adaptation, which `adversary` judges; a complementary-label
estimator's sum over all classes) claims nothing, nor does any term whose direction cannot be
followed.

A cosine similarity of the labels and the trained model's output (their product, each scaled
to unit length) is followed the same way: a loss that grows with it turns the predictions away
from the labels. Keras' `cosine_similarity` is already negated, and ``1 -`` it flips it back.
So is the overlap ``y * p`` of the labels and the model's probabilities (``loss=dice_coef``,
not ``1 - dice_coef``); an IoU's union holds it in a divisor, not followed: it claims nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import tensorflow as tf

from gradguard.diagnose import (
    SOFTMAX_CROSS_ENTROPY,
    descendants,
    is_data,
    reads_variables,
    variable_placeholders,
)
from gradguard.findings import Finding
from gradguard.lossdirection import label_sign, to_loss

__all__ = ["Term", "back_to", "graph_loss_sign", "terms", "trained_layer"]

# Between a layer's output and a log-probability: a bias, an activation, one head's slice,
# Keras' clipping and renormalization, the `1 - p` of a binary cross-entropy's second term.
_TOWARD_OUTPUT = {
    "Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "BiasAdd", "AddV2", "Add", "Sub",
    "Softmax", "Sigmoid", "LogSoftmax", "Minimum", "Maximum", "ClipByValue", "RealDiv",
    "StridedSlice", "Slice",
}  # fmt: skip
_PRODUCTS = {"MatMul", "BatchMatMulV2", "Einsum", "Conv2D", "Conv1D"}
_KINDS = ("likelihood", "cosine", "overlap")  # what a term grows with (`graph_loss_sign`)


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


class Term(NamedTuple):
    """One path of a likelihood-like term to the loss (`terms`)."""

    op: tf.Operation  # what the term is computed by (a cross-entropy, a log-probability)
    kind: str  # what it grows with: "likelihood", "cosine" or "overlap"
    direction: int  # +1: the loss grows with it; -1: falls; `UNKNOWN` (0): cannot be told
    labelled: bool  # the labels' own (picked or weighted by labels that are data)
    weighted: bool  # multiplied on its way by the model's own values (an entropy's p * log p)


def terms(
    loss: tf.Tensor,
    ops: set[tf.Operation],
    is_output: Callable[[tf.Operation], bool],
    constant_labels: bool = False,
) -> list[Term]:
    """Every path to `loss` of a log-probability, cosine or overlap of the model's output.

    Args:
      loss: The traced scalar loss.
      ops: The ops `loss` is computed from.
      is_output: Whether an op makes the trained model's output (`trained_layer`).
      constant_labels: Whether labels made in the step from constants count as labels
        (``tf.zeros(n)`` for a domain classifier's "source"), or only data the step is fed.
    """
    # Data is what the step is fed and the model did not make (its output is fed too when a
    # loss function is traced alone).
    made = set().union(*(descendants(op.outputs[0]) for op in ops if is_output(op)))

    def labels(tensor: tf.Tensor) -> bool:
        if tensor.op in made:
            return False
        return not reads_variables(tensor) if constant_labels else is_data(tensor)

    found = []
    for op in sorted(ops, key=lambda op: op.name):
        for kind, find in zip(_KINDS, (_log_likelihood, _cosine, _overlap)):
            source = find(op, is_output, labels)
            if source is not None:
                tensor, direction, labelled = source
                paths = to_loss(tensor, (direction, labelled, False), loss, ops, labels)
                found += [Term(op, kind, *path) for path in paths]
                break
    return found


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
    directions, kinds = [], {}
    for term in terms(loss, ops, is_output):
        kinds[term.op] = term.kind
        # The labels' log-likelihood; and, against it, log-probabilities summed over the
        # classes with constant weights (a complementary-label estimator's counter-term).
        if term.labelled or (not term.weighted and term.direction != 1):
            directions.append((term.direction, term.op))
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
    trained model's output: +1. A softmax cross-entropy op, or a sigmoid one on logits (Keras'
    binary cross-entropy ``from_logits``), is already negated: -1, labelled by its labels when
    they are data.
    """
    if op.type in SOFTMAX_CROSS_ENTROPY:
        if not _from_output(op.inputs[0], is_output, allow_log=True):
            return None
        return op.outputs[0], -1, labels(op.inputs[1])
    sigmoid = _sigmoid_cross_entropy(op)
    if sigmoid is not None and _from_output(sigmoid[0], is_output):
        return op.outputs[0], -1, labels(sigmoid[1])
    if op.type == "LogSoftmax" and _from_output(op.inputs[0], is_output):
        return op.outputs[0], 1, False
    if op.type in ("Log", "Xlogy") and _probability_of_output(op.inputs[-1], is_output):
        labelled = op.type == "Xlogy" and labels(op.inputs[0])
        return op.outputs[0], 1, labelled
    return None


def _sigmoid_cross_entropy(op: tf.Operation) -> tuple[tf.Tensor, tf.Tensor] | None:
    """(logits, labels) of ``tf.nn.sigmoid_cross_entropy_with_logits`` (Keras' on logits).

    Its last op: ``(max(x, 0) - x * z) + log1p(exp(-|x|))``.
    """
    if op.type not in ("AddV2", "Add"):
        return None
    first, second = (t.op for t in op.inputs)
    if first.type != "Sub" or second.type != "Log1p" or second.inputs[0].op.type != "Exp":
        return None
    positive, product = first.inputs[0].op, first.inputs[1].op  # Select(x >= 0, x, 0), x * z
    if positive.type not in ("Select", "SelectV2") or product.type != "Mul":
        return None
    logits, labels = product.inputs
    if logits is not positive.inputs[1]:
        logits, labels = labels, logits
    return logits, labels


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
        marked = labels(label) and label_sign(label) == 1 and (label.shape.rank or 0) >= 2
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

        if back_to(scale, squares, lambda o: o.type in _NORM) is not None:
            return vector
    return None


def _probability_of_output(tensor: tf.Tensor, is_output: Callable[[tf.Operation], bool]) -> bool:
    """Whether `tensor` is a softmax or sigmoid (or one minus it) of the model's output."""
    squashing = back_to(
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
    found = back_to(
        tensor, is_output, lambda op: op.type in _TOWARD_OUTPUT or (allow_log and op.type == "Log")
    )
    return found is not None


def back_to(
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
