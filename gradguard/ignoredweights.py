"""Sample weights `fit` hands a `train_step` override that no loss reads (`sample-weights-ignored`).

`fit(class_weight=...)` or `fit(sample_weight=...)` hands each batch's weights to the model's
`train_step` as the third element of its ``data``. Keras' own step passes them to
`compute_loss`; an override that unpacks ``x, y = data[0], data[1]`` drops them, and its loss
weighs every example alike: the class weights asked for an imbalanced task do nothing (hunt33
b07, tensorflow#43902: balanced accuracy 0.66 against 0.82 with the weights in the loss).

Read from the losses differentiated in a trace of `fit`'s step function: Keras names its graph
``one_step_on_data``, and its one argument is the batch, ``(x, y, sample_weight)`` when weights
are given. Found when none of those losses is computed from the weights. Silent: Keras' own
step; an override that passes the weights to its loss (`compute_loss`, a Keras loss's
``sample_weight``, or a product by hand), or to one of several losses (a GAN's); a `fit`
without weights (its batch is a pair); any other traced function.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import tensorflow as tf

from gradguard.activations import enclosing_graphs
from gradguard.diagnose import value_ancestors
from gradguard.findings import Finding

__all__ = ["STEP_FUNCTION", "sample_weights_ignored"]

STEP_FUNCTION = "one_step_on_data"  # the name of the graph Keras traces `train_step` in


def sample_weights_ignored(traced: Iterable[tuple[tf.Tensor, int]]) -> list[Finding]:
    """`sample-weights-ignored` per `fit` step whose traced losses none read its weights.

    Args:
      traced: The losses differentiated in traced steps, each with its step.
    """
    steps: dict[Any, tuple[list[tf.Tensor], list[tf.Tensor], int]] = {}
    for loss, step in traced:
        graph = _step_graph(loss.graph)
        weights = _sample_weights(graph) if graph is not None else None
        if weights:
            steps.setdefault(graph, (weights, [], step))[1].append(loss)
    found = []
    for weights, losses, step in steps.values():
        placeholders = {t.op for t in weights}
        if not any(placeholders & value_ancestors(loss) for loss in losses):
            found.append(_finding(step))
    return found


def _step_graph(graph: Any) -> Any:
    """`graph` or the graph it is nested in that is `fit`'s step function; None if none is."""
    return next(
        (g for g in enclosing_graphs(graph) if getattr(g, "name", None) == STEP_FUNCTION), None
    )


def _sample_weights(graph: Any) -> list[tf.Tensor]:
    """The placeholders of the sample weights in the batch `graph` takes; [] if it has none."""
    signature = getattr(graph, "structured_input_signature", None)
    args: Any = signature[0] if signature else ()
    if len(args) != 1 or not isinstance(args[0], tuple) or len(args[0]) != 3:
        return []
    leaves = [tf.nest.flatten(part) for part in args[0]]
    if not all(isinstance(s, tf.TensorSpec) for part in leaves for s in part):
        return []  # (ragged or sparse inputs take several placeholders each: not counted)
    start = len(leaves[0]) + len(leaves[1])
    return list(graph.inputs[start : start + len(leaves[2])])


def _finding(step: int) -> Finding:
    message = (
        "fit was given sample weights (class_weight or sample_weight), but the model's "
        "train_step never uses them: they arrive as the third element of data, and no loss it "
        "takes gradients of is computed from them, so every example weighs the same and the "
        "weights do nothing. Unpack them with x, y, sample_weight = "
        "keras.utils.unpack_x_y_sample_weight(data) and pass them to the loss: "
        "self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight), or "
        "loss_fn(y, y_pred, sample_weight=sample_weight)."
    )
    return Finding("sample-weights-ignored", message, step)
