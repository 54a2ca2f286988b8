"""Softmax weights taken over an axis of size 1 (`softmax-over-one`).

A softmax normalizes over its axis; over an axis of size 1 each weight is exactly 1, whatever
the scores. Attention pooling is where it happens: scores of shape ``(batch, T, 1)`` (a
``Dense(1)`` per time step) with ``tf.nn.softmax(scores, axis=-1)`` where ``axis=1`` (the time
steps) was meant. The weighted sum then adds the values up unweighted, the layers computing the
scores get exactly zero gradient, and the model learns less (held-out accuracy 0.56 against
0.99). Nothing fails; `zero-gradient` names the layers, not why.

Read from a traced graph (`lossgraph.graph_findings`; `TrainStep` from its traced
predictions): a softmax whose input's last axis has a static size of 1, whose output weighs
the positions of a tensor that is not constant (a product broadcasting it over wider values,
or a matrix product summing over the positions). Attention to a single key (a matrix product
over the size-1 axis: Keras' `MultiHeadAttention` given one key) has weights of 1 by rights,
and a model's last layer ``Dense(1, activation="softmax")`` feeds its loss, not a product (it
is `from-logits-mismatch`'s, `output_layer`): both stay silent.
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf

from gradguard.findings import Finding

__all__ = ["graph_softmax_over_one"]

# Ops that pass weights on unchanged.
_VIEWS = frozenset({"Identity", "Cast"})
# Matrix products and whether the first operand is transposed: its rows are then summed over.
_TRANSPOSED = {"MatMul": "transpose_a", "BatchMatMulV2": "adj_x", "BatchMatMulV3": "adj_x"}


def _weighs(tensor: tf.Tensor) -> bool:
    """Whether weights `tensor`, of shape (..., positions, 1), weigh a varying tensor's positions.

    By a product broadcasting the size-1 axis over wider values, or a matrix product summing
    over the positions. A matrix product that sums over the size-1 axis itself is attention to
    one key (a cross-attention to a single context vector), where weights of 1 are right.
    """
    for consumer in tensor.consumers():
        if consumer.type in _VIEWS and _weighs(consumer.outputs[0]):
            return True
        others = [t for t in consumer.inputs if t is not tensor]
        if not others or tf.get_static_value(others[0]) is not None:
            continue
        if consumer.type == "Mul":
            shape = others[0].shape
            if shape.rank and shape[-1] is not None and shape[-1] > 1:
                return True
        elif consumer.type in _TRANSPOSED and consumer.inputs[0] is tensor:
            if consumer.get_attr(_TRANSPOSED[consumer.type]):
                return True
    return False


def graph_softmax_over_one(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`softmax-over-one` for the first softmax of size-1 axis whose weights weigh something."""
    softmaxes = sorted((op for op in ops if op.type == "Softmax"), key=lambda op: op.name)
    for op in softmaxes:
        shape = op.inputs[0].shape
        if shape.rank is None or shape.rank < 2 or shape[-1] != 1 or not _weighs(op.outputs[0]):
            continue
        scope = op.name.rpartition("/")[0]
        shown = tuple(shape.as_list())
        message = (
            f"The softmax{f' in {scope}' if scope else ''} is taken over an axis of size 1 "
            f"(its input is {shown}): every weight it makes is exactly 1, whatever the scores, "
            "so what it weighs is added up unweighted and the layers computing the scores get "
            "no gradient. Take it over the positions to weigh (axis=1 for scores of shape "
            "(batch, steps, 1)), or squeeze the size-1 axis first."
        )
        return Finding("softmax-over-one", message, step, details={"op": op.name})
    return None
