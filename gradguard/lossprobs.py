"""Whether a traced loss reads the model's outputs as the kind of values they are.

`from-logits-mismatch`, read from a hand-written step's traced loss (`lossgraph.graph_findings`),
where no compiled loss names `from_logits`: a softmax cross-entropy given a softmax's output
(softmax twice), a cross-entropy on probabilities given a trained layer's raw output (logits
clipped and logged), and a softmax over the batch axis into a log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import tensorflow as tf

from gradguard.diagnose import SOFTMAX_CROSS_ENTROPY, is_data, shape_text
from gradguard.findings import Finding

__all__ = ["graph_double_softmax", "graph_logits_as_probabilities", "graph_softmax_over_batch"]

# Ops that pass a value through unchanged in kind (a probability stays one).
_PASSING = {"Identity", "Reshape", "Cast", "ExpandDims", "Squeeze", "Transpose", "Pack", "ConcatV2"}


def graph_double_softmax(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`from-logits-mismatch`: a cross-entropy that applies softmax to a softmax's output.

    Read from a traced loss: a ``*SoftmaxCrossEntropyWithLogits`` op whose logits come from a
    ``Softmax`` (through reshapes or casts only). The predictions are squashed toward uniform
    and the loss cannot get near 0. Keras' own losses with ``from_logits=True`` on a model
    ending in its softmax take the logits instead, and are not flagged.
    """
    for op in ops:
        if op.type not in SOFTMAX_CROSS_ENTROPY:
            continue
        source = op.inputs[0].op
        while source.type in _PASSING and source.inputs:
            source = source.inputs[0].op
        if source.type == "Softmax":
            message = (
                f"The loss applies softmax to the output of a softmax ({source.name} feeds "
                f"{op.type}): the predictions are squashed toward uniform and the loss cannot "
                "get near 0. Give the model a plain Dense output (logits) for a loss with "
                "logits, or use a loss on probabilities (from_logits=False)."
            )
            details = {"softmax": source.name, "loss_op": op.name}
            return Finding("from-logits-mismatch", message, step, details=details)
    return None


# Ops between a layer's raw output and the log of Keras' cross-entropy on probabilities:
# reshapes, its clip to [epsilon, 1 - epsilon] (a Minimum, then a Maximum) and, for the
# categorical one, its division by the rows' sums.
_CLIPPED = {*_PASSING, "Minimum", "Maximum", "ClipByValue", "RealDiv"}
# A dense layer's bias, added to its product.
_BIAS = {"BiasAdd", "AddV2", "Add"}


def graph_logits_as_probabilities(
    ops: Iterable[tf.Operation], is_output: Callable[[tf.Operation], bool], step: int
) -> Finding | None:
    """`from-logits-mismatch`: a cross-entropy on probabilities given a trained layer's raw output.

    Read from a traced loss: a ``Log`` of a value clipped to at most 1 that comes, through the
    clip, a division by the rows' sums, casts and reshapes only, from the raw output of a
    layer this update trains (`is_output`: a product with its kernel, plus its bias; no softmax
    or sigmoid), and that is a cross-entropy's log-probability (multiplied by the labels, or
    the logits of Keras' sparse cross-entropy; or picked by the labels, ``where(y == 1, p, 1 -
    p)``, as a hand-written binary or focal cross-entropy does). The loss was not told
    ``from_logits=True``: Keras clips logits to [1e-7, 1 - 1e-7] and reads them as
    probabilities (a hand-written loss's own clip alike). Keras' losses on a
    softmax or sigmoid output take its logits and are not flagged, nor are probabilities mixed
    by a fixed matrix after the softmax (a noise-adaptation or a class-aggregation layer that
    is not trained), nor the log of a variance floored at epsilon (no upper clip).
    """
    loss_ops = set(ops)
    for op in loss_ops:
        if op.type != "Log":
            continue
        selected = _selected_by_label(op.inputs[0].op)
        if not (selected or _cross_entropy_term(op, loss_ops)):
            continue
        outputs = [_clipped_output(s, is_output) for s in selected or [op.inputs[0].op]]
        source = next((output for output in outputs if output is not None), None)
        if source is not None:
            message = (
                f"The loss takes the log of the raw output of a trained layer ({source.name}, no "
                "softmax or sigmoid between) as a probability: a cross-entropy with "
                "from_logits=False (or written by hand) given logits. They are clipped to "
                "[epsilon, 1 - epsilon], so every logit outside (0, 1) is read as a probability "
                "of about 0 or 1 and gets no "
                "gradient, and the model learns slowly or not at all. Pass from_logits=True "
                "to the loss (e.g. keras.losses.SparseCategoricalCrossentropy(from_logits="
                "True)), or end the model with a softmax (a sigmoid for one unit)."
            )
            details = {"output": source.name, "log": op.name}
            return Finding("from-logits-mismatch", message, step, details=details)
    return None


def _clipped_output(
    source: tf.Operation, is_output: Callable[[tf.Operation], bool]
) -> tf.Operation | None:
    """The trained layer's raw output that `source` caps at 1 or less (`_CLIPPED`), or None."""
    capped = False
    while source.type in _CLIPPED and source.inputs:
        capped |= source.type in ("Minimum", "ClipByValue") and _at_most_one(source)
        source = source.inputs[0].op
    product = source.inputs[0].op if source.type in _BIAS and source.inputs else source
    return source if capped and is_output(product) else None


def _selected_by_label(select: tf.Operation) -> list[tf.Operation]:
    """A binary cross-entropy's ``where(y == 1, p, 1 - p)`` (a focal loss's): p, twice.

    The ops `select` picks from by a condition read from the labels, ``1 - p`` taken as p;
    empty for any other op.
    """
    if select.type not in ("SelectV2", "Select") or not is_data(select.inputs[0]):
        return []
    picked = []
    for branch in (t.op for t in select.inputs[1:]):
        if branch.type == "Sub" and tf.get_static_value(branch.inputs[0]) == 1.0:
            branch = branch.inputs[1].op
        picked.append(branch)
    return picked


def _at_most_one(clip: tf.Operation) -> bool:
    """Whether a ``Minimum`` or ``ClipByValue`` caps its input at a constant of 1 or less."""
    bound = tf.get_static_value(clip.inputs[-1] if clip.type == "ClipByValue" else clip.inputs[1])
    return bound is not None and bool(np.all(np.asarray(bound) <= 1.0))


def _cross_entropy_term(log: tf.Operation, loss_ops: set[tf.Operation]) -> bool:
    """Whether `log`'s output is a cross-entropy's: times the labels, or sparse logits."""
    for consumer in (c for c in log.outputs[0].consumers() if c in loss_ops):
        if consumer.type == "SparseSoftmaxCrossEntropyWithLogits":
            return True
        if consumer.type == "Mul" and any(is_data(t) for t in consumer.inputs):
            return True
    return False


# Ops between a softmax and the log of a cross-entropy that keep each value a probability:
# reshapes, the clip of Keras' cross-entropy (and its division by the rows' sums).
_TO_LOG = {*_PASSING, "Minimum", "Maximum", "ClipByValue", "RealDiv", "AddV2", "GatherV2"}


def graph_softmax_over_batch(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`from-logits-mismatch`: a softmax over the batch axis of a dense output, into a log.

    Read from a traced loss: ``tf.nn.softmax(logits, axis=0)`` on (n, C) outputs is a
    ``Softmax`` (or ``LogSoftmax``) of their transpose (C, n), so its rows sum to 1 over the
    examples, not over the C classes, and a cross-entropy then trades probability between
    examples: one example alone gets 1 for every class. Only where axis 0 is surely not
    meant: the outputs of a dense layer (a product with a kernel variable, C >= 2 units, a
    batch axis of another size) whose softmax goes straight into a log (through reshapes and
    clipping only). Similarities (contrastive, dual-softmax matching), distances to
    prototypes and attention weights that pool features before the loss stay silent, over
    whichever axis.
    """
    loss_ops = set(ops)
    for op in loss_ops:
        if op.type not in ("Softmax", "LogSoftmax") or op.inputs[0].op.type != "Transpose":
            continue
        outputs = op.inputs[0].op.inputs[0]  # (n, C), before the transpose
        shape, swapped = outputs.shape, op.inputs[0].shape
        if shape.rank != 2 or swapped.rank != 2 or shape[1] is None or shape[1] < 2:
            continue
        batch, classes = shape[0], shape[1]
        if swapped[0] != classes or batch == classes or not _dense_output(outputs):
            continue
        if op.type == "LogSoftmax" or _goes_into_log(op.outputs[0], loss_ops):
            message = (
                f"The loss takes a softmax over the batch axis of outputs of shape "
                f"{shape_text(shape)} ({op.name}, tf.nn.softmax(..., axis=0)): each class's "
                f"values sum to 1 over the examples, not each example's over its {classes} "
                "classes, so the model learns to share probability between examples and one "
                "example alone gets 1 for every class. Use axis=-1 (the default)."
            )
            return Finding("from-logits-mismatch", message, step, details={"softmax": op.name})
    return None


def _dense_output(tensor: tf.Tensor) -> bool:
    """Whether `tensor` is a dense layer's output: a product with a kernel variable (+ bias)."""
    op = tensor.op
    if op.type in ("AddV2", "BiasAdd", "Add"):
        op = op.inputs[0].op
    if op.type != "MatMul":
        return False
    kernel = op.inputs[1].op
    while kernel.type in ("Cast", "Identity") and kernel.inputs:
        kernel = kernel.inputs[0].op
    return kernel.type == "ReadVariableOp"


def _goes_into_log(tensor: tf.Tensor, loss_ops: set[tf.Operation]) -> bool:
    """Whether `tensor` reaches a ``Log`` of the loss through `_TO_LOG` ops only."""
    stack, seen = [tensor.op], set()
    while stack:
        op = stack.pop()
        for consumer in (c for t in op.outputs for c in t.consumers()):
            if consumer in seen or consumer not in loss_ops:
                continue
            seen.add(consumer)
            if consumer.type in ("Log", "Xlogy"):
                return True
            if consumer.type in _TO_LOG:
                stack.append(consumer)
    return False
