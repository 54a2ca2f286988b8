"""A loss that is the batch's mean, summed as if it held one loss per example and divided again.

TensorFlow's custom-training guide reduces per-example losses with
``tf.reduce_sum(per_example_loss) * (1. / GLOBAL_BATCH_SIZE)``, or
``tf.nn.compute_average_loss``. Given a Keras loss object with its default reduction, which
already averages over the batch, the sum is of one number and the division is a second one:
the loss, and every gradient, is the batch size times too small. Under SGD the learning rate in
effect is divided by it (hunt26 b05: 64 examples a batch, held-out MSE 0.61 against 0.02 with
``reduction="none"``); Adam divides most of the scale out again, and the logged loss is off.

Read from a traced loss (`lossgraph.graph_findings`; `TrainStep` from its loss traced alone): a
product with a constant of 1/4 or less, or a division by a constant of 4 or more, of a ``Sum``
of one number, which is a mean over every axis of per-example values computed from the model
(``tf.reduce_mean``, or a Keras loss's sum over a count). A sum of per-example losses divided
by the batch (the guide's way), a loss object's ``reduction="sum"`` divided by the batch, and a
mean weighted by a half or a third are silent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import tensorflow as tf

from gradguard.diagnose import before_views, reduces_all, scalar_constant
from gradguard.findings import Finding

__all__ = ["graph_mean_divided_again"]

_DIVISIONS = frozenset({"RealDiv", "DivNoNan"})
_LEAST_BATCH = 4.0  # the least divisor taken for a batch size (a half or a third is a weight)


def graph_mean_divided_again(
    ops: Iterable[tf.Operation], from_model: Callable[[tf.Tensor], bool], step: int
) -> Finding | None:
    """`loss-averaged-twice`: a batch mean summed as one number, then divided by a constant.

    `from_model` tells whether values are computed from the model's output.
    """
    for op in sorted(ops, key=lambda op: op.name):
        divided = _divided(op)
        if divided is None:
            continue
        summed, divisor = before_views(divided[0]), divided[1]
        if summed.op.type != "Sum" or summed.op.inputs[0].shape.rank != 0:
            continue
        mean = before_views(summed.op.inputs[0])
        if not _batch_mean(mean, from_model):
            continue
        message = (
            f"The loss is the batch's mean ({mean.op.name}) passed through tf.reduce_sum, as "
            f"if it held one loss per example, then divided by {divisor:g} ({op.name}): it "
            f"is averaged twice, so the loss and every gradient are {divisor:g} times too "
            "small (under SGD, as if the learning rate were divided by as much; Adam divides "
            "most of it out). A Keras loss object averages over the batch already: build it "
            "with reduction='none' before tf.reduce_sum(...) / batch_size (or "
            "tf.nn.compute_average_loss(per_example_loss, global_batch_size=...)), or drop "
            "the division."
        )
        return Finding("loss-averaged-twice", message, step, details={"divisor": divisor})
    return None


def _divided(op: tf.Operation) -> tuple[tf.Tensor, float] | None:
    """(What `op` divides, by what): by `_LEAST_BATCH` or more, or times its inverse or less."""
    if op.type in _DIVISIONS:
        value = scalar_constant(op.inputs[1])
        return (op.inputs[0], value) if value is not None and value >= _LEAST_BATCH else None
    if op.type == "Mul":
        a, b = op.inputs
        for values, factor in ((a, scalar_constant(b)), (b, scalar_constant(a))):
            if factor is not None and 0.0 < factor <= 1.0 / _LEAST_BATCH:
                return values, 1.0 / factor
    return None


def _batch_mean(tensor: tf.Tensor, from_model: Callable[[tf.Tensor], bool]) -> bool:
    """Whether `tensor` averages per-example values of the model's over every axis."""
    op = tensor.op
    if op.type == "Mean":
        values = op.inputs[0]
    elif op.type in _DIVISIONS and scalar_constant(op.inputs[1]) != 1.0:
        summed = before_views(op.inputs[0]).op  # (a Keras loss: a sum over the count)
        if summed.type != "Sum":
            return False
        op, values = summed, summed.inputs[0]
    else:
        return False
    return bool(reduces_all(op)) and from_model(values)
