"""Layers run in inference mode by the training step: a model called without ``training=True``.

Keras 3 layers take their mode from the ``training`` argument of the outermost call; a model
called as ``model(x)`` in a hand-written step (or in a `train_step` override) runs every
`BatchNormalization` in inference mode and every `Dropout` as the identity. Training still
seems to work: the normalization uses the initial moving statistics (mean 0, variance 1), never
the batch's, and they never update, so the layers do not normalize and the model trains as if
they were not there (and without its dropout). Judged on the host from the layers the training
forward passes called (`tap.Tap.told`): a normalization layer only ever told nothing, whose
scale or offset an optimizer trains, and whose moving statistics are still exactly their
initial values. ``training=False`` given on purpose (a pretrained base kept in inference
mode while fine-tuning) is told, and is not reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import keras
import numpy as np

from gradguard.findings import Finding, listing

__all__ = ["MIN_UPDATES", "inference_mode"]

MIN_UPDATES = 20  # updates of the layer's scale or offset before it is judged


def inference_mode(
    layers: Iterable[Any], told: Mapping[int, set[Any]], cores: Iterable[Any], step: int
) -> list[Finding]:
    """The finding for normalization layers that only ever ran in inference mode in training.

    Args:
      layers: The layers the training forward passes called.
      told: Per layer (by id), the ``training`` values it was called with there.
      cores: The optimizers' `StepCore`s: the variables each trains and its updates so far.
      step: The step to date the finding at.
    """
    layers = list(layers)
    untold = [layer for layer in layers if told.get(id(layer)) == {None}]
    if not untold:
        return []  # (before reading each core's step count: a host read)
    updates = {id(v): core.steps for core in cores for v in core.variables}
    stuck = [layer for layer in untold if _unnormalized(layer, updates)]
    if not stuck:
        return []
    names = [layer.name for layer in stuck]
    # (Keras hands a Dropout False rather than None when its model was told nothing.)
    dropout = [
        layer.name
        for layer in layers
        if isinstance(layer, keras.layers.Dropout) and told.get(id(layer), {True}) <= {None, False}
    ]
    also = f"; {listing(dropout)} dropped nothing" if dropout else ""
    trained = max(updates.get(id(v), 0) for layer in stuck for v in layer.trainable_variables)
    they, them = ("they", "their") if len(stuck) > 1 else ("it", "its")
    message = (
        f"{listing(names)} ran in inference mode in every training step (the model was called "
        f"without training=True): {they} normalized with {them} initial moving statistics (mean "
        f"0, variance 1), never the batch's, and those never updated in {trained} updates{also}. "
        "Call the model with training=True in the training step: model(x, training=True)."
    )
    details = {"layers": names, "dropout": dropout}
    return [Finding("training-flag-missing", message, step, details=details)]


def _unnormalized(layer: Any, updates: Mapping[int, int]) -> bool:
    """A `BatchNormalization` trained `MIN_UPDATES` times with its statistics as initialized."""
    if not isinstance(layer, keras.layers.BatchNormalization) or not layer.trainable_variables:
        return False
    if min(updates.get(id(v), 0) for v in layer.trainable_variables) < MIN_UPDATES:
        return False
    initial = (
        (layer.moving_mean, layer.moving_mean_initializer),
        (layer.moving_variance, layer.moving_variance_initializer),
    )
    for variable, initializer in initial:
        value = np.asarray(variable)
        if not np.array_equal(value, np.asarray(initializer(value.shape, value.dtype))):
            return False
    return True
