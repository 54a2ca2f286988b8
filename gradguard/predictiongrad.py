"""A gradient taken of the model's predictions instead of its loss (`gradient-of-predictions`).

``tape.gradient(y_pred, model.trainable_variables)`` where ``loss`` was meant: TensorFlow sums
a target that is not a scalar, so the update lowers the sum of the model's outputs (its logits),
whatever the labels, while the loss computed beside it stalls or rises (hunt20, a classifier
with its own `train_step`: held-out accuracy 0.15 against 0.91).

Taken at the update that applies such gradients (not at a gradient call whose result is only
read: a saliency map): the call's target was, as the very tensor, the output of a Keras model
called under the tape, with two or more values per example (rank 2 or more, a last axis of 2
or more), made by layers that predict (with trainable weights, or an activation: not a model
that returns its loss per example or per token from a `Lambda`), the sources held that model's
trainable variables, and no ``output_gradients`` were given (they chain a loss's gradient
through the outputs by hand, as an actor-critic or a split backward pass does: healthy). In a
traced step, gradients clipped or scaled before the update still count (hunt21 m1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from gradguard.carried import carries
from gradguard.findings import Finding

__all__ = ["PredictionGradients"]


class PredictionGradients:
    """The latest gradients taken of a model's predictions, until an update applies them."""

    def __init__(self) -> None:
        self._gradients: list[Any] = []
        self._model: Any = None
        self._shape: Any = None
        self._reported = False

    def on_gradient(
        self, model: Any, target: Any, pairs: Sequence[tuple[Any, Any]], weighted: bool
    ) -> None:
        """A gradient call of `target`, which `model`'s call returned (None: no model's)."""
        self._gradients, shape = [], getattr(target, "shape", None)
        if model is None or weighted or shape is None or shape.rank is None or shape.rank < 2:
            return
        if shape[-1] is None or shape[-1] < 2 or not _predicts(model):
            return
        own = {id(v) for v in getattr(model, "trainable_variables", [])}
        self._gradients = [g for v, g in pairs if id(v) in own and g is not None]
        self._model, self._shape = model, shape

    def on_apply(self, grads: Sequence[Any], step: int) -> list[Finding]:
        """`gradient-of-predictions` if the update applies those gradients (once per run)."""
        if self._reported or not any(carries(g, self._gradients) for g in grads):
            return []
        self._reported = True
        name, shape = getattr(self._model, "name", "model"), tuple(self._shape)
        finding = Finding(
            "gradient-of-predictions",
            f"The gradients applied are those of the output of model {name!r} itself (shape "
            f"{shape}), not of a loss: tape.gradient sums a target that is not a scalar, so "
            "each update lowers the sum of the predictions, whatever the labels, and the loss "
            "does not fall. Differentiate the loss: grads = tape.gradient(loss, "
            "model.trainable_variables).",
            step,
            details={"model": name, "shape": list(shape)},
        )
        return [finding]


def _predicts(model: Any) -> bool:
    """Whether every output of a functional `model` is made by a layer that predicts.

    One with trainable weights (Dense, a convolution, a model inside) or an activation.
    """
    outputs = tf.nest.flatten(getattr(model, "outputs", None) or [])
    layers = [getattr(getattr(t, "_keras_history", None), "operation", None) for t in outputs]
    activation = (keras.layers.Activation, keras.layers.Softmax)
    return bool(layers) and all(
        layer is not None and (bool(layer.trainable_weights) or isinstance(layer, activation))
        for layer in layers
    )
