"""A `keras.layers.Normalization` never adapted: an identity in front of unscaled inputs.

``keras.layers.Normalization()`` given neither ``adapt()`` nor ``mean=``/``variance=`` is built
with a mean of 0 and a variance of 1: it passes its inputs through unchanged, and Keras neither
raises nor warns. A model meant to see standardized features then trains on raw ones (prices in
the thousands, pixels in 0..255): slowly, or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.findings import Finding, number

__all__ = ["InputScales", "never_adapted", "never_adapted_layers"]

# A feature whose mean or spread over a batch reaches this is far from standardized: raw
# prices, pixels in 0..255. Inputs already near mean 0 and spread 1 (or in 0..1) lose little
# to a Normalization layer left an identity.
_FAR = 5.0


def never_adapted(layer: Any) -> bool:
    """Whether `layer` is a built `keras.layers.Normalization` computing with mean 0, variance 1.

    Statistics adapted on real data are never exactly these; a layer given ``mean=`` and
    ``variance=`` holds them as constants, and one that inverts a normalization is not read.
    The statistics it computes with are read, not only its weights: weights assigned without
    ``finalize_state()`` (``set_weights``) leave the layer computing with those it was built
    with (`_statistics`).
    """
    if not isinstance(layer, keras.layers.Normalization) or not layer.built or layer.invert:
        return False
    if getattr(layer, "input_mean", None) is not None or not hasattr(layer, "adapt_mean"):
        return False
    mean, variance = _statistics(layer)[0]
    return mean.size > 0 and not mean.any() and bool(np.all(variance == 1.0))


def never_adapted_layers(model: Any) -> list[Any]:
    """The layers of `model`, nested ones included, that are `never_adapted`."""
    return [layer for layer in _compat.flatten_layers(model) if never_adapted(layer)]


def _statistics(layer: Any) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The mean and variance `layer` computes with, and those its weights hold.

    The first are `finalize_state`'s copies of the second (the weights when a trace built the
    layer: its copies are that graph's).
    """
    with _compat.outside_trace():  # (read eagerly, also while a step is traced)
        stored = (np.asarray(layer.adapt_mean.numpy()), np.asarray(layer.adapt_variance.numpy()))
        try:
            used = (np.asarray(layer.mean), np.asarray(layer.variance))
        except (TypeError, ValueError, NotImplementedError):  # a symbolic tensor
            used = stored
    return (used[0].reshape(stored[0].shape), used[1].reshape(stored[1].shape)), stored


class InputScales:
    """How far from standardized the inputs of never-adapted Normalization layers are.

    Per such layer called in a training forward pass, the largest mean or spread of a feature
    over a batch, folded in-graph on each update (`observe`); judged on the host (`findings`)
    while the layer is still not adapted.
    """

    def __init__(self) -> None:
        self._scales = replicas.LayerMaxima("gradguard_input_scale")
        self._reported: set[int] = set()

    def observe(self, inputs: Iterable[tuple[Any, Any]]) -> None:
        """In-graph: folds each never-adapted layer's input into its largest scale.

        Args:
          inputs: ``(layer, x)`` pairs, `x` what the layer read in the forward pass (None
            when not seen here): the guard's `Tap`, `TrainStep`'s capture of the layers'
            outputs (a Normalization never adapted outputs its input).
        """
        for layer, x in inputs:
            if isinstance(x, np.ndarray):
                x = tf.constant(x)  # (an eager step's batch, as the user's code gave it)
            if not tf.is_tensor(x) or not x.dtype.is_floating or not never_adapted(layer):
                continue
            axes = getattr(layer, "_reduce_axis", None)
            if axes is None or x.shape.rank != len(layer._build_input_shape):
                continue
            mean, variance = tf.nn.moments(tf.cast(x, tf.float32), axes=list(axes))
            scale = tf.maximum(tf.reduce_max(tf.abs(mean)), tf.reduce_max(tf.sqrt(variance)))
            # (NaN in the data is the data's own finding: it is not folded in.)
            self._scales.fold(layer, tf.where(tf.math.is_finite(scale), scale, 0.0))

    def findings(self, step: int) -> list[Finding]:
        """A finding per layer still not adapted whose inputs were far from standardized."""
        found = []
        for layer, scale in self._scales.read():
            if id(layer) in self._reported or not never_adapted(layer) or scale < _FAR:
                continue
            self._reported.add(id(layer))
            stale = _statistics(layer)[1][0].any()  # weights adapted, copies not made
            cause = (
                "computes with mean 0 and variance 1 although its weights hold adapted ones "
                "(assigned by set_weights or a restore without finalize_state())"
                if stale
                else "was never adapted: its mean is 0 and its variance 1"
            )
            fix = (
                f"call {layer.name}.finalize_state() after assigning its weights"
                if stale
                else f"call {layer.name}.adapt(x_train) before training, or pass mean= and "
                "variance="
            )
            message = (
                f"The Normalization layer '{layer.name}' {cause}, so it passes its inputs "
                "through unchanged, and they are far from standardized (a feature's mean or "
                f"spread over a batch reached {number(scale)}), so the model trains on the raw "
                f"values; {fix}."
            )
            details = {"layer": layer.name, "input_scale": scale}
            found.append(Finding("normalization-not-adapted", message, step, details=details))
        return found
