"""Whether a traced loss counts only the examples of one label: a padding mask inverted.

``mask = tf.math.equal(real, 0)`` where ``tf.math.logical_not(tf.math.equal(real, 0))`` was
meant (TensorFlow's translation tutorial's masked loss, the ``logical_not`` left out) weights
every token's loss by whether its label is the padding. Every label the loss then sees is the
same: the model learns to predict the padding everywhere, its loss goes to 0 and its accuracy on
real tokens stays at 0. Reported as `labels-uninformative`: the labels the loss counts tell the
model nothing. Read from a traced loss (`graph_mask_keeps_one_label`), and from `fit`'s
`sample_weight` when the mask is given as data (`fit_weights_keep_one_label`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import batch as batch_lib
from gradguard.diagnose import VIEWS, ancestors, before_views
from gradguard.findings import Finding

__all__ = ["fit_weights_keep_one_label", "graph_mask_keeps_one_label"]

# The examples of the labels a weight leaves out are at least this share of the training data:
# fewer (an outlier or two dropped) leave a data set of one label anyway.
_LEFT_OUT = 0.1


def graph_mask_keeps_one_label(
    loss: tf.Tensor,
    ops: set[tf.Operation],
    is_model: Callable[[tf.Operation], bool],
    step: int,
) -> Finding | None:
    """`labels-uninformative`: the loss weights each example by its label being one value.

    Read from a traced loss: a mask ``Equal(labels, c)`` (`c` a constant) that multiplies a
    per-example loss computed from the model (`is_model` tells the model's ops: its variables'
    reads, or its output) or keeps it (``tf.where(mask, loss, 0)``, ``tf.boolean_mask``), where
    that per-example loss compares the same labels with the model's output (`_compares`).
    Reported when every path from the model to `loss` passes through such a product
    (`_only_masked`): only examples whose label is `c` count. A mask on ``NotEqual`` or
    ``logical_not(Equal)`` (the padding left out), a mask on the model's input (masked-token
    prediction) or on another column of the labels (a weight packed beside the target), one
    term per class (a positive and a negative term) and a loss with a term of its own beside
    the masked one stay silent.
    """
    equals = [op for op in ops if op.type == "Equal"]
    if not equals:
        return None
    model = [op for op in ops if is_model(op)]
    from_model = _forward(ops, model)
    for op in equals:
        labels, constant = _labels_and_constant(op, from_model)
        if labels is None:
            continue
        masked = {
            product
            for product in _products(op, ops)
            if _compares(_masked_value(product, op, ops), labels, ops, from_model, set(model))
        }
        if masked and _only_masked(loss, masked, from_model):
            message = (
                f"The loss counts only the examples whose label is {constant}: the mask "
                f"tf.equal(labels, {constant}) ({op.name}) weights every example's loss, so "
                f"every label it sees is {constant}, the model learns to predict {constant} "
                "whatever the input, and its loss goes to 0. If it marks padding, keep the "
                f"other labels instead: tf.math.logical_not(tf.math.equal(labels, {constant})) "
                f"or tf.not_equal(labels, {constant}); or pass ignore_class={constant} to "
                "keras.losses.SparseCategoricalCrossentropy."
            )
            details = {"mask": op.name, "label": constant}
            return Finding("labels-uninformative", message, step, details=details)
    return None


def fit_weights_keep_one_label(arguments: Mapping[str, Any], step: int) -> Finding | None:
    """`labels-uninformative`: `fit`'s `sample_weight` is non-zero on one label's examples only.

    The padding mask given to `fit` as data, inverted: ``sample_weight=(y == 0)`` where
    ``y != 0`` was meant. Judged at the end of a `fit` under ``gradguard run``.

    Args:
      arguments: `fit`'s arguments by name: its labels `y` and `sample_weight` (NumPy arrays
        of the same shape, labels whole numbers; a trailing axis of 1 on the labels, or one-hot
        rows, is read as one label per weight) and `validation_split` (its last examples are
        not trained on). Anything else is not judged.
      step: The step to date the finding at.
    """
    y, weights = arguments.get("y"), arguments.get("sample_weight")
    if not isinstance(y, np.ndarray) or not isinstance(weights, np.ndarray):
        return None
    if y.ndim == weights.ndim + 1 and y.shape[-1] == 1:
        y = y[..., 0]
    elif y.ndim == weights.ndim + 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(-1) == 1):
        y = y.argmax(-1)  # one-hot rows
    if y.shape != weights.shape or y.dtype.kind not in "biuf" or weights.dtype.kind not in "biuf":
        return None
    if not np.all(y == np.round(y)):
        return None  # (a regression's targets)
    y, weights = batch_lib.training_part(y, arguments), batch_lib.training_part(weights, arguments)
    kept = y[np.isfinite(weights) & (weights != 0)]
    if kept.size == 0 or np.any(kept != kept.flat[0]):
        return None
    label = kept.flat[0].item()
    label = int(label) if float(label).is_integer() else label
    left_out = float(np.mean(y != kept.flat[0]))
    if left_out < _LEFT_OUT:
        return None
    message = (
        f"fit's sample_weight is non-zero only on the examples whose label is {label} "
        f"({left_out:.0%} of the labels are others, all weighted 0), so the loss counts only "
        f"them: the model learns to predict {label} whatever the input, and its loss goes to 0. "
        f"If the weights mark padding, keep the other labels instead: sample_weight=(y != "
        f"{label}), or pass ignore_class={label} to keras.losses.SparseCategoricalCrossentropy."
    )
    details = {"mask": "sample_weight", "label": label, "left_out": left_out}
    return Finding("labels-uninformative", message, step, details=details)


def _forward(ops: set[tf.Operation], starts: list[tf.Operation]) -> set[tf.Operation]:
    """The ops of `ops` computed from any of `starts` (themselves included)."""
    found: set[tf.Operation] = set()
    stack = list(starts)
    while stack:
        op = stack.pop()
        if op in found:
            continue
        found.add(op)
        stack += [c for t in op.outputs for c in t.consumers() if c in ops]
    return found


def _labels_and_constant(
    op: tf.Operation, from_model: set[tf.Operation]
) -> tuple[tf.Tensor | None, int | float | None]:
    """The data compared in ``Equal(labels, c)`` (before views) and the constant `c`.

    (None, None) when `op` compares no data with a constant: the model's output with one.
    """
    for labels, other in ((op.inputs[0], op.inputs[1]), (op.inputs[1], op.inputs[0])):
        value = tf.get_static_value(other)
        if value is None or np.size(value) != 1 or labels.op in from_model:
            continue
        if np.asarray(value).dtype.kind in "OSU":
            continue  # a string (`TextVectorization` in the model compares strings)
        if tf.get_static_value(labels) is None:
            constant = np.asarray(value).reshape(()).item()  # (labels cast to float: 0.0 is 0)
            return before_views(labels), int(constant) if float(constant).is_integer() else constant
    return None, None


def _products(mask: tf.Operation, ops: set[tf.Operation]) -> set[tf.Operation]:
    """The ops that keep values where `mask` holds.

    A product by it, ``tf.where(mask, x, 0)``, or ``tf.boolean_mask(x, mask)`` (a gather at the
    indices where the mask holds).
    """
    found, stack = set(), [mask.outputs[0]]
    while stack:
        value = stack.pop()
        for consumer in value.consumers():
            if consumer not in ops:
                continue
            if consumer.type in VIEWS or consumer.type == "Where":
                stack += consumer.outputs
            elif (
                consumer.type == "Mul"
                or (consumer.type == "GatherV2" and consumer.inputs[1] is value)
                or (
                    consumer.type in ("Select", "SelectV2")
                    and consumer.inputs[0] is value
                    and _all_zeros(consumer.inputs[2])
                )
            ):
                found.add(consumer)
    return found


def _all_zeros(tensor: tf.Tensor) -> bool:
    """Whether `tensor` is zeros whatever the step: a constant, or ``tf.zeros_like``."""
    if tensor.op.type == "ZerosLike":
        return True
    value = tf.get_static_value(tensor)
    return value is not None and not np.any(value)


def _masked_value(product: tf.Operation, mask: tf.Operation, ops: set[tf.Operation]) -> tf.Tensor:
    """The value `product` keeps where `mask` holds: its other factor, or what it selects."""
    if product.type == "GatherV2":
        return product.inputs[0]
    if product.type != "Mul":
        return product.inputs[1]
    first, second = product.inputs[0], product.inputs[1]
    return second if first.op in _forward(ops, [mask]) else first


def _compares(
    value: tf.Tensor,
    labels: tf.Tensor,
    ops: set[tf.Operation],
    from_model: set[tf.Operation],
    model: set[tf.Operation],
) -> bool:
    """Whether `value` is a loss comparing `labels` with the model's output.

    The labels tensor itself (not another column of it, nor another output of the op that
    split it off) meets, in one op, a value computed from the `model` (its variables' reads,
    or its output) that does not read it, and no variable is read past that op: a
    cross-entropy's labels and logits. Labels the model reads as its input (a mask on the
    masked tokens of a masked-language model, a domain id) meet its weights in its first
    layer, which later layers read on from: not a comparison.
    """
    from_labels = _forward(ops, [c for c in labels.consumers() if c in ops])

    def labelled(t: tf.Tensor) -> bool:
        return t.op in from_labels or (t.op, t.value_index) == (labels.op, labels.value_index)

    if value.op not in from_labels or value.op not in from_model:
        return False
    for op in ancestors(value) & from_labels & from_model:
        data = any(labelled(t) and t.op not in from_model for t in op.inputs)
        output = any(t.op in from_model and not labelled(t) for t in op.inputs)
        if data and output and not _reads_a_variable_past(op, ops, model):
            return True
    return False


def _reads_a_variable_past(
    op: tf.Operation, ops: set[tf.Operation], model: set[tf.Operation]
) -> bool:
    """Whether an op computed from `op`'s output reads the model directly (a layer past it)."""
    past = _forward(ops, [op]) - {op}
    return any(t.op in model for after in past for t in after.inputs)


def _only_masked(loss: tf.Tensor, masked: set[tf.Operation], from_model: set[tf.Operation]) -> bool:
    """Whether every path from the model to `loss` goes through a `masked` product.

    Walked back from the loss, entering a masked product by its mask alone: no other way
    reaches the model (a term of the loss the mask does not weight, a weight penalty).
    """
    seen: set[tf.Operation] = set()
    stack = [loss.op]
    while stack:
        op = stack.pop()
        if op in seen or op not in from_model:
            continue  # (data and constants lead nowhere near the model)
        seen.add(op)
        inputs = [t.op for t in op.inputs]
        if op in masked:
            continue  # its factors: the mask (data) and the masked loss
        if not any(s in from_model for s in inputs):
            return False  # the model itself: a variable's read, or its output
        stack += inputs
    return True
