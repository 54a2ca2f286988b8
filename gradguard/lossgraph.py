"""What a traced loss shows about how it compares labels with predictions.

A loss that silently broadcasts them (`loss-broadcast`: every label compared with every prediction,
or a narrow output stretched over wide labels) and a cross-entropy given the model's output as its
labels (`labels-out-of-range`, `swappedargs`). Read from a traced `FuncGraph`, once per trace.
`graph_findings` also judges whether the loss reads the outputs as the values they are
(`from-logits-mismatch`, `lossprobs`); with `loss_fn_findings`, the loss's sign (`losssign`) whether
it measures the error whole: the batch's mean error squared, or the error never squared
(`lossmean`), and whether it counts only the examples of one label (`lossmask`); and whether a term
of it is the difference or quotient of two copies of one computation (`selfcancel`), or a
cross-entropy subtracted along with the head that computes it (`adversary`); whether it reads a
stack of copies of one computation (`repeatedcolumns`); whether it falls for ever with a variable it
trains (`unbounded`); whether its soft targets come from a teacher it trains (`softtargets`), or its
policy gradient's advantage from a critic it trains (`actorcritic`); whether the data on its way to
the loss was reshaped where a transpose was meant (`reshapes`), read channels-first by a
channels-last convolution (`convlayout`), summed back onto the graph nodes it was gathered from
(`messagepass`), attended through a mask that keeps only the padding (`attnmask`), or multiplied by
a constant copy of a variable the gradient trains (`weightcopy`); and, with `loss_fn_findings` too,
whether the batch's mean is divided by the batch again (`meantwice`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import tensorflow as tf

from gradguard import (
    actorcritic,
    adversary,
    attnmask,
    batchhinge,
    convlayout,
    lossmask,
    lossmean,
    lossprobs,
    losssign,
    meantwice,
    messagepass,
    repeatedcolumns,
    reshapes,
    selfcancel,
    selfpair,
    softmaxone,
    softtargets,
    swappedargs,
    unbounded,
    weightcopy,
)
from gradguard.diagnose import (
    READS,
    ancestors,
    descendants,
    reads_variables,
    shape_text,
)
from gradguard.findings import Finding

__all__ = [
    "graph_findings",
    "graph_loss_broadcast",
    "loss_broadcast",
    "loss_fn_findings",
]


def _mutually_broadcast(a: tf.TensorShape, b: tf.TensorShape) -> bool:
    """True when each of two shapes is stretched along some axis by the other: (n,) vs (n, 1)."""
    if a.rank is None or b.rank is None or a.rank == 0 or b.rank == 0:
        return False
    rank = max(a.rank, b.rank)
    dims_a = [1] * (rank - a.rank) + list(a.as_list())
    dims_b = [1] * (rank - b.rank) + list(b.as_list())
    a_stretched = any(x == 1 and y != 1 for x, y in zip(dims_a, dims_b))
    b_stretched = any(y == 1 and x != 1 for x, y in zip(dims_a, dims_b))
    return a_stretched and b_stretched


def loss_broadcast(
    loss_fn: Callable[[Any, Any], Any],
    y_true: tf.TensorSpec,
    y_pred: tf.TensorSpec,
    step: int,
    softmax: bool = False,
) -> Finding | None:
    """Finds a loss that silently broadcasts `y_true` against `y_pred` (e.g. (32,) vs (32, 1)).

    Traces `loss_fn` alone and looks for an elementwise op that compares labels with
    predictions they cannot match: two inputs that stretch each other ((n,) against (n, 1):
    every label compared with every prediction), predictions of width 1 against labels of a
    larger width ((n, 1) against one-hot (n, 3)), or one label per sequence against an output
    per time step ((n, 1) against (n, T, 1)); which input derives from which is read from the
    graph (`_stretched`). Labels that pack more than the target (a weight beside it, sliced off
    in the loss) meet the predictions at their width, and class indices against logits go
    through a sparse op, not a broadcast: neither is flagged. Keras loss objects align ranks
    first, so (n,) against (n, 1) is never flagged there. `softmax`: the predictions are a
    softmax's probabilities (`output_layer.softmax_width`), which no one label fits all of.
    """
    if y_true.shape == y_pred.shape:
        return None
    # `loss_fn` is `losses.resolve`'s: AutoGraph has converted a user's function already.
    try:
        concrete = tf.function(loss_fn, autograph=False).get_concrete_function(y_true, y_pred)
    except Exception:  # noqa: BLE001 - a loss that cannot be traced alone on these says nothing
        return None
    from_labels, from_predictions = (descendants(t) for t in concrete.inputs[:2])
    details: dict[str, Any] = {
        "y_true_shape": y_true.shape.as_list(),
        "y_pred_shape": y_pred.shape.as_list(),
    }
    shapes = f"y_true has shape {shape_text(y_true.shape)} and y_pred {shape_text(y_pred.shape)}"
    # Predictions per time step against labels per sequence: (n, T, 1) against (n, 1), which a
    # Keras loss aligns by squeezing the predictions' last axis.
    sequences = (y_pred.shape.rank or 0) >= 3 and y_pred.shape.rank > (y_true.shape.rank or 0)
    for op in concrete.graph.get_operations():
        inputs = [t for t in op.inputs if t.dtype.is_floating]
        if len(inputs) != 2 or len(op.outputs) != 1:
            continue
        # Only labels met with predictions: a pairwise loss (triplet, contrastive) stretches
        # predictions against predictions, and labels against labels, by design.
        for pred, label in (inputs, inputs[::-1]):
            if pred.op not in from_predictions or label.op not in from_labels - from_predictions:
                continue
            if _mutually_broadcast(label.shape, pred.shape):
                shape = op.outputs[0].shape
                message = (
                    f"{shapes}: the loss broadcasts them to {shape_text(shape)}, comparing every "
                    "label with every prediction, so the model cannot fit; reshape y_true to "
                    "y_pred's shape (e.g. y[:, None]) or use a keras.losses object, which aligns "
                    "them."
                )
                details["broadcast_shape"] = shape.as_list() if shape.rank is not None else None
                return Finding("loss-broadcast", message, step, details=details)
            # (A softmax's probabilities compared with labels: a difference, not a weight.)
            compared = softmax and op.type in ("Sub", "SquaredDifference")
            stretched = _stretched(label.shape, pred.shape, sequences, compared)
            if stretched is not None:
                details["axis"], why = stretched
                return Finding("loss-broadcast", f"{shapes}: {why}", step, details=details)
    return None


def _stretched(
    labels: tf.TensorShape, outputs: tf.TensorShape, sequences: bool, softmax: bool
) -> tuple[int, str] | None:
    """The axis along which labels and predictions of equal rank are stretched, and why.

    Predictions of size 1 against labels of a larger size ((n, 1) against one-hot (n, 3)): the
    output is too narrow for the labels. Labels of size 1 against several predictions along an
    axis between the batch and the last one ((n, 1, 1) against (n, T, 1)), or along any axis
    when the model's output had time steps the loss squeezed away (`sequences`): one label
    per sequence compared with every time step's output (a recurrent layer left at
    ``return_sequences=True``). A label against a softmax's probabilities on the last axis
    (`softmax`): one class id against every class's probability, which sum to 1. A label
    against several outputs on the last axis is otherwise a design: quantiles or an ensemble's
    heads against one target.
    """
    if labels.rank is None or labels.rank != outputs.rank or labels.rank < 2:
        return None
    last = labels.rank - 1
    for axis in range(1, labels.rank):
        label, output = labels[axis], outputs[axis]
        if output == 1 and label is not None and label > 1:
            return axis, (
                f"the loss compares each of the model's {output} output(s) with {label} labels "
                f"(broadcast along axis {axis}), so it cannot fit them; give the last layer "
                f"{label} units, or pass labels of the output's shape."
            )
        if label == 1 and output is not None and output > 1 and softmax and axis == last:
            return axis, (
                f"the loss compares each label with all {output} of the softmax's probabilities "
                f"(broadcast along axis {axis}), training every class's probability toward the "
                "same value though they sum to 1, so the model cannot fit; for class ids use "
                "sparse_categorical_crossentropy, or one-hot labels "
                f"(keras.utils.to_categorical(y, {output})) with categorical_crossentropy."
            )
        if label == 1 and output != 1 and (axis < last or sequences):
            count = "several" if output is None else str(output)
            return axis, (
                f"the loss compares each label with {count} outputs along axis {axis} (one "
                "label per sequence against every time step's output), so the model is "
                "trained to predict it at every step; end the model with one output per "
                "example (return_sequences=False on the last recurrent layer, or pooling), "
                "or give labels per step."
            )
    return None


def _labels_against_predictions(a: tf.TensorShape, b: tf.TensorShape) -> bool:
    """True for shapes (n,) and (n, 1), in either order: labels against predictions."""
    if a.rank is None or b.rank is None or {a.rank, b.rank} != {1, 2}:
        return False
    flat, column = (a, b) if a.rank == 1 else (b, a)
    n, (m, one) = flat[0], column
    return one == 1 and (n is None or m is None or n == m) and n != 1


def _batch_against_batch(a: tf.Tensor, b: tf.Tensor) -> bool:
    """True for (n, ..., C) against (n, 1, ..., C) of data against the model's output.

    The lower-rank input gains leading axes of 1 in the broadcast, so its batch axis meets the
    other's second axis, of size 1 there, and each stretches the other: every example against
    every example. Only for one-hot labels (the higher rank, read from no variable) against
    the model's output (the lower): K centers or prototypes against a batch, a chamfer or
    kernel distance between two sets and a pairwise loss of outputs are tables on purpose.
    """
    if a.shape.rank is None or b.shape.rank is None or a.shape.rank == b.shape.rank:
        return False
    low, high = (a, b) if a.shape.rank < b.shape.rank else (b, a)
    if low.shape.rank < 2:
        return False
    # Both first axes the batch (its size, or both unknown): not K centers against a batch.
    if low.shape[0] == 1 or low.shape[0] != high.shape[0]:
        return False
    if not _mutually_broadcast(low.shape, high.shape) or reads_variables(high):
        return False
    # The labels' size-1 axis is the data's own (one-hot codes of a column of class ids), not
    # one expanded on purpose for a pairwise table (x[:, None] - y).
    made = ancestors(high)
    return reads_variables(low) and any(op.type == "OneHot" for op in made)


def graph_loss_broadcast(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`loss-broadcast` from a traced loss: an elementwise op pairing every example with every one.

    For code gradguard did not write (the guard, `gradguard run`), where only the loss tensor
    is seen. Two patterns are reported, each between data and the model's output (one input
    computed from variables, the other not): inputs of shapes (n,) and (n, 1); and one-hot
    labels of a column of class ids, (n, 1, C), against (n, C) outputs: (n, n, C)
    (`_batch_against_batch`). Pairwise terms written on purpose (labels against labels,
    outputs against outputs, a chamfer or kernel distance between two sets) stay silent.
    """
    for op in ops:
        inputs = [t for t in op.inputs if t.dtype.is_floating]
        if len(inputs) != 2 or len(op.outputs) != 1:
            continue
        a, b = inputs[0].shape, inputs[1].shape
        # Data against the model's output (one computed from variables): labels against labels
        # (a survival loss's risk sets), outputs against outputs (a triplet loss) are on purpose.
        flat_column = _labels_against_predictions(a, b) and (
            reads_variables(inputs[0]) != reads_variables(inputs[1])
        )
        if flat_column or _batch_against_batch(*inputs):
            shape = op.outputs[0].shape
            flat, column = (a, b) if a.rank < b.rank else (b, a)
            message = (
                f"An op in the loss ({op.type}) combines shapes {shape_text(flat)} and "
                f"{shape_text(column)} into {shape_text(shape)}, comparing every label with every "
                "prediction, so the model cannot fit; reshape the labels to the predictions' "
                "shape (y[:, None] for labels of shape (n,); a column of class ids (n, 1) "
                "squeezed to (n,) before tf.one_hot) or use a keras.losses object, which "
                "aligns them."
            )
            details = {"shapes": [flat.as_list(), column.as_list()], "op": op.name}
            return Finding("loss-broadcast", message, step, details=details)
    return None


def _reads_a_variable(op: tf.Operation) -> bool:
    return op.type in READS


def graph_findings(loss: tf.Tensor, step: int, variables: Sequence[Any] = ()) -> list[Finding]:
    """Every judgment of a traced loss, for code gradguard did not write (the guard, `run`).

    Each judge reads `ops`, the ops the loss is computed from (one walk of the graph for all);
    the loss's sign is judged for the model whose `variables` the gradient is taken of.
    """
    ops = ancestors(loss)
    judges = (
        graph_loss_broadcast,
        lossprobs.graph_double_softmax,
        lossprobs.graph_softmax_over_batch,
        swappedargs.graph_swapped_cross_entropy,
        reshapes.graph_reshape_transposes,
        convlayout.graph_channels_first,
        messagepass.graph_messages_to_sender,
        selfcancel.graph_term_cancels_itself,
        repeatedcolumns.graph_repeated_columns,
        attnmask.graph_attention_keeps_padding,
        softmaxone.graph_softmax_over_one,
        batchhinge.graph_hinge_on_batch_total,
        selfpair.graph_self_positive,
    )
    found = [judge(ops, step) for judge in judges]
    is_output = losssign.trained_layer(loss.graph, variables)
    found.append(lossprobs.graph_logits_as_probabilities(ops, is_output, step))
    found.append(losssign.graph_loss_sign(loss, ops, is_output, step))
    found.append(adversary.graph_head_trained_to_lose(loss, ops, is_output, variables, step))
    found.append(unbounded.graph_loss_has_no_minimum(loss, ops, variables, step))
    found.append(softtargets.graph_teacher_trained(loss, ops, is_output, variables, step))
    found.append(actorcritic.graph_advantage_not_stopped(loss, ops, variables, step))
    found.append(lossmean.graph_error_measured_whole(loss, ops, reads_variables, step))
    found.append(lossmask.graph_mask_keeps_one_label(loss, ops, _reads_a_variable, step))
    found.append(weightcopy.graph_weights_copied(loss, ops, variables, step))
    found.append(meantwice.graph_mean_divided_again(ops, reads_variables, step))
    return [finding for finding in found if finding is not None]


def loss_fn_findings(
    loss_fn: Callable[[Any, Any], Any], y_true: tf.TensorSpec, y_pred: tf.TensorSpec, step: int
) -> list[Finding]:
    """The judgments of a traced loss for a loss function traced alone, `y_pred` the output.

    For `TrainStep`, which is handed the loss function: `loss-sign-flipped`
    (`losssign.graph_loss_sign`), `labels-uninformative` (`lossmean`), the mask's
    `labels-uninformative` (`lossmask`), `loss-averaged-twice` (`meantwice`) and
    `repeated-columns` (`repeatedcolumns`). Keras' and
    TensorFlow's own losses are not traced: they are right.
    """
    owner = loss_fn if inspect.isroutine(loss_fn) else type(loss_fn)
    if (getattr(owner, "__module__", None) or "").split(".")[0] in ("keras", "tensorflow"):
        return []
    try:
        concrete = tf.function(loss_fn, autograph=False).get_concrete_function(y_true, y_pred)
    except Exception:  # noqa: BLE001 - a loss that cannot be traced alone on these says nothing
        return []
    losses = [t for t in concrete.outputs if t.dtype.is_floating]
    if len(losses) != 1:
        return []
    loss, output = losses[0], concrete.inputs[1].op
    ops = ancestors(loss)
    found = [
        losssign.graph_loss_sign(loss, ops, lambda op: op is output, step),
        lossmean.graph_error_measured_whole(loss, ops, lambda t: output in ancestors(t), step),
        lossmask.graph_mask_keeps_one_label(loss, ops, lambda op: op is output, step),
        meantwice.graph_mean_divided_again(ops, lambda t: output in ancestors(t), step),
        repeatedcolumns.graph_repeated_columns(ops, step),
    ]
    return [finding for finding in found if finding is not None]
