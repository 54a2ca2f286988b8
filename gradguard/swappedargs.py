"""A cross-entropy given the model's output as its labels: its arguments swapped.

`labels-out-of-range`, read from a traced loss once per trace (`lossgraph.graph_findings`): the
labels slot computed from variables, the logits or probabilities slot from data.
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf

from gradguard import losslevel
from gradguard.diagnose import is_data, reads_variables
from gradguard.findings import Finding

__all__ = ["graph_swapped_cross_entropy"]


def _clipped_log_inputs(op: tf.Operation) -> tuple[tf.Tensor, tf.Tensor] | None:
    """The (probabilities, labels) of `op` if it is the ``Log`` of a Keras cross-entropy.

    Keras' ``categorical_crossentropy`` and ``binary_crossentropy`` on probabilities compute
    ``target * log(clip(output, eps, 1 - eps))`` (and ``log(1 - clip(...))``): the clipped
    tensor is the probabilities, the factor of the product the labels.
    """
    if op.type != "Log":
        return None
    clipped = op.inputs[0].op
    if clipped.type == "Sub":  # (binary: log(1 - output))
        clipped = clipped.inputs[1].op
    # ``tf.clip_by_value``: Maximum(Minimum(x, 1 - eps), eps), or one ClipByValue op.
    if clipped.type == "Maximum" and clipped.inputs[0].op.type == "Minimum":
        clipped = clipped.inputs[0].op
    elif clipped.type != "ClipByValue":
        return None
    for product in op.outputs[0].consumers():
        factor = [t for t in product.inputs if t is not op.outputs[0]]
        if product.type == "Mul" and factor:
            return clipped.inputs[0], factor[0]
    return None


def graph_swapped_cross_entropy(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`labels-out-of-range`: a cross-entropy given the model's output as labels.

    Read from a traced loss: a ``SoftmaxCrossEntropyWithLogits`` op, or the ``logistic_loss`` of
    ``tf.nn.sigmoid_cross_entropy_with_logits`` (`losslevel.logistic_inputs`), whose labels are
    computed from variables and whose logits are not (``labels=`` and ``logits=`` swapped, or
    passed by position in TF1's order). The labels are then unbounded logits, not
    probabilities: the loss falls below 0 without limit while the model learns nothing.
    And Keras' cross-entropy on probabilities (`_clipped_log_inputs`) whose labels are computed
    from variables and whose probabilities are data (``categorical_crossentropy(y_pred,
    y_true)``): the log of one-hot labels clipped to 1e-7 weighs each wrong class by 16, a loss
    linear in the probabilities, which trains a classifier slowly and badly. Distillation stays
    silent: its logits come from the student; so does label smoothing's constant target.
    """
    for op in ops:
        if op.type == "SoftmaxCrossEntropyWithLogits":
            pair: tuple[tf.Tensor, tf.Tensor] | None = (op.inputs[0], op.inputs[1])
        else:
            pair = losslevel.logistic_inputs(op)
        keras_form = pair is None
        if keras_form:
            pair = _clipped_log_inputs(op)
        if pair is None:
            continue
        (logits, labels), name = pair, op.name
        if keras_form and reads_variables(labels) and is_data(logits):
            message = (
                f"A cross-entropy ({name}) takes the log of the data and weighs it by the "
                "model's output: y_true and y_pred are swapped (Keras' losses take y_true "
                "first). The log of labels clipped to (1e-7, 1) weighs every wrong class by "
                "16, a loss linear in the probabilities, which trains slowly and badly; call "
                "categorical_crossentropy(y_true, y_pred)."
            )
            return Finding("labels-out-of-range", message, step, details={"loss_op": name})
        if not keras_form and reads_variables(labels) and not reads_variables(logits):
            message = (
                f"The cross-entropy {name} takes the model's output as its labels and the "
                "data as its logits: labels= and logits= are swapped (TensorFlow 2 takes "
                "labels first). It reads labels as probabilities, so the loss falls below 0 "
                "without limit while the model learns nothing; pass labels=y_true, "
                "logits=model(x) by keyword."
            )
            return Finding("labels-out-of-range", message, step, details={"loss_op": name})
    return None
