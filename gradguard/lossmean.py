"""Whether a traced loss measures the error whole: averaged before squaring, or never squared.

``tf.reduce_mean(y - y_pred) ** 2`` (the brackets of a mean squared error misplaced) measures
only the batch's mean error: any pairing of the batch's labels with its examples gives the same
loss, so the model learns the labels' mean and nothing per example, while its loss goes to 0.
``tf.reduce_mean(y - y_pred)`` (the square forgotten) is linear in the error: its gradient is
the same whatever the labels, and the loss falls without limit as the predictions grow.
Reported as `labels-uninformative`: the loss cannot tell which label belongs to which input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from gradguard.diagnose import DATA_SOURCES, SOFTMAX_CROSS_ENTROPY, ancestors, is_data, reduces_all
from gradguard.findings import Finding

__all__ = ["graph_error_measured_whole"]

# Ops an error passes through on its way to the loss that neither square nor reduce it.
_LINEAR = {
    "Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Neg", "AddV2", "Add",
    "Sub", "Mul", "RealDiv", "DivNoNan", "StridedSlice",
}  # fmt: skip
_SQUARING = {"Square", "Pow", "Abs"}
# Linear ops that scale their input by another: linear in the error only for a constant factor.
_SCALING = {"Mul", "RealDiv", "DivNoNan"}
# Ops whose outputs are the step's data: a traced function's arguments, an iterator's batch.
# Ops that read only their input's shape, not its values.
_SHAPES = {"Shape", "ShapeN", "Size", "Rank"}
# Ops that compare two values element by element.
_ELEMENTWISE = {"Sub", "Mul", "AddV2", "SquaredDifference", "RealDiv", "DivNoNan", "Xlogy"}


def graph_error_measured_whole(
    loss: tf.Tensor,
    ops: set[tf.Operation],
    from_model: Callable[[tf.Tensor], bool],
    step: int,
) -> Finding | None:
    """`labels-uninformative`: every label-prediction error is measured whole, or linearly.

    Read from a traced loss: each difference of data and the model's output, one value per
    example at least (`from_model` tells the output), is followed to the loss (`_fate`).
    Reported when nothing else in the loss compares the labels with the model (a
    cross-entropy, a product), the model's side of each difference reads its input alone
    (`_model_reads_its_input_alone`), and every path either takes a mean or sum over all its
    axes before a square, a power or an absolute value (only the batch's mean error is
    measured), or reaches the loss through sums, means and constant factors alone (the loss is
    linear in the error). A mean squared error (squared per example), a calibration term
    beside a per-example loss, means over one axis (moment matching, errors summed over time
    steps), an error weighted by data (a divergence's target probabilities, advantages),
    labels that also reach the model's side (a divergence sampled on actions, an expected
    regret) and anything the path cannot follow stay silent.
    """
    errors = [op for op in ops if op.type == "Sub" and _data_against_model(op, from_model)]
    if not errors:
        return None
    # Past the model's output: its forward pass meets its inputs with its weights on purpose.
    forward = set().union(*(ancestors(t) for op in errors for t in op.inputs if from_model(t)))
    compared = [op for op in ops - forward if _data_against_model(op, from_model)]
    if len(compared) > len(errors):
        return None  # another comparison of labels with the model: a per-example loss
    if not all(_model_reads_its_input_alone(op, from_model) for op in errors):
        return None
    fates = {_fate(op, loss, ops) for op in errors}
    if len(fates) != 1 or None in fates:
        return None
    names = ", ".join(op.name for op in errors)
    if fates == {"linear"}:
        message = (
            f"The loss is linear in the error ({names}, the labels' difference from the "
            "model's output, reaches the loss through sums and means only, never squared or "
            "taken in absolute value): its gradient is the same whatever the labels, so the "
            "model learns nothing from them and the loss falls without limit as the "
            "predictions grow. Square each example's error, tf.reduce_mean(tf.square(y - "
            "y_pred)), or take its absolute value, tf.reduce_mean(tf.abs(y - y_pred))."
        )
    else:
        message = (
            f"The loss averages the error over the batch before squaring it ({names} is "
            "reduced whole, then squared): it measures only the batch's mean error, so any "
            "pairing of labels with examples scores the same and the model learns to predict "
            "the labels' mean. Square each example's error first: tf.reduce_mean(tf.square(y - "
            "y_pred)), not tf.reduce_mean(y - y_pred) ** 2."
        )
    return Finding("labels-uninformative", message, step, details={"errors": names})


def _data_against_model(op: tf.Operation, from_model: Callable[[tf.Tensor], bool]) -> bool:
    """Whether `op` combines labels with predictions, one value per example (or more)."""
    if op.type in SOFTMAX_CROSS_ENTROPY:
        return from_model(op.inputs[0]) and is_data(op.inputs[1])
    if op.type not in _ELEMENTWISE or op.outputs[0].shape.rank in (None, 0):
        return False
    a, b = op.inputs[0], op.inputs[1]
    if not a.dtype.is_floating or not b.dtype.is_floating:
        return False
    for model, data in ((a, b), (b, a)):
        if from_model(model) and is_data(data) and not from_model(data):
            return True
    return False


def _model_reads_its_input_alone(op: tf.Operation, from_model: Callable[[tf.Tensor], bool]) -> bool:
    """Whether the model's side of the error `op` reads one data tensor, which the other does not.

    The model's input alone: labels, actions or rewards that also reach the model's side (a
    log-probability picked by the actions taken, probabilities weighted by the rewards) make
    the gradient depend on them, whatever the error's form (a sampled divergence, an expected
    regret).
    """
    a, b = op.inputs[0], op.inputs[1]
    model, data = (a, b) if from_model(a) else (b, a)
    read = _data_read(model)
    return len(read) == 1 and not read & _data_read(data)


def _data_read(tensor: tf.Tensor) -> set[tuple[str, int]]:
    """The step's data tensors `tensor` is computed from, by op name and output.

    Its inputs (a function's arguments, an iterator's next element), not variables (resource
    handles); values only, not shapes.
    """
    read = _values_read([tensor])
    return {
        (v.op.name, v.value_index)
        for v in read
        if v.op.type in DATA_SOURCES and v.dtype != tf.resource
    }


def _values_read(tensors: list[tf.Tensor]) -> list[tf.Tensor]:
    """Every value `tensors` are computed from (themselves included), back to the step's data.

    Through values only: an op that reads a shape (a count of examples) is not followed.
    """
    found: dict[tuple[str, int], tf.Tensor] = {}
    stack = list(tensors)
    while stack:
        value = stack.pop()
        name = (value.op.name, value.value_index)
        if name in found or value.op.type in _SHAPES:
            continue
        found[name] = value
        if value.op.type not in DATA_SOURCES:
            stack.extend(value.op.inputs)
    return list(found.values())


def _fate(op: tf.Operation, loss: tf.Tensor, ops: set[tf.Operation]) -> str | None:
    """How `op`'s error reaches `loss`, the same on every path, or None.

    "squared": reduced whole, then squared; "linear": through sums, means and factors the same
    on every step only (a factor of data, the returns of a policy gradient, is a weight per
    example whose sign the graph cannot tell).
    """
    stack: list[tuple[tf.Tensor, bool]] = [(op.outputs[0], False)]
    seen, fates, scaled = set[tuple[Any, bool]](), set[str](), False
    while stack:
        value, reduced = stack.pop()
        if (value.ref(), reduced) in seen:
            continue
        seen.add((value.ref(), reduced))
        if value.op is loss.op:
            fates.add("linear")
            continue
        for consumer in (c for c in value.consumers() if c in ops):
            if consumer.type in _SHAPES:
                continue  # (a count of examples: the error's shape, not its value)
            if consumer.type in _SQUARING:
                if not reduced:
                    return None  # an error squared per example
                fates.add("squared")
                continue
            if consumer.type in ("Mean", "Sum"):
                whole = reduces_all(consumer)
                if whole is None:
                    return None
                stack.append((consumer.outputs[0], reduced or whole))
            elif consumer.type in _LINEAR:
                scaled |= consumer.type in _SCALING and not _constant_factor(consumer, value)
                stack += [(out, reduced) for out in consumer.outputs]
            else:
                return None  # a path this cannot follow claims nothing
    if fates == {"linear"} and scaled:
        return None
    return fates.pop() if len(fates) == 1 else None


def _constant_factor(op: tf.Operation, value: tf.Tensor) -> bool:
    """Whether `op` scales `value` by a factor the same on every step (not data, no weights).

    A count of examples (a mean written as a sum over the batch size) reads only a shape.
    """
    others = [t for t in op.inputs if (t.op, t.value_index) != (value.op, value.value_index)]
    varies = {"ReadVariableOp", *DATA_SOURCES}  # (a variable's handle is a placeholder too)
    read = _values_read(others)
    return bool(others) and not any(v.op.type in varies or v.op is value.op for v in read)
