"""Hidden Dense layers with no activation: the whole model one linear map (`activation-missing`).

`keras.layers.Dense` has no activation unless given one. A multilayer perceptron written as
``Dense(64), Dense(64), Dense(1)`` is a product of matrices: one linear map of its inputs, which
a single ``Dense(1)`` computes as well. It trains, its loss falls to a linear model's and stops
there (held-out R² -0.03 against 0.96 with ``activation="relu"`` on a curved target). Nothing
fails; a softmax or sigmoid on the last layer makes it a logistic regression, no more.

Read from the model's layers when it first trains (`TrainStep`'s first call; the guard and
``gradguard run`` at their first read of a model an optimizer trains): a model made only of
`Dense` layers and layers that keep it linear (dropout, noise, reshapes, batch normalization,
rescaling), two `Dense` layers or more, each but the last without activation. Only models whose
layers are the whole computation are judged: a `Sequential` model, and a functional one whose
operations are all layers. Left alone: a subclassed model (its `call` may apply
``tf.nn.relu`` between the layers), a functional model with an op of its own between them
(``keras.ops.relu``); a hidden layer narrower than both the inputs and the outputs (a linear
bottleneck, as in a linear autoencoder or a low-rank factorization: it limits the map's rank on
purpose); any other layer (a convolution, an embedding, a layer normalization, a `Lambda`, a
nested model, a layer of the user's), whose effect is not judged.
"""

from __future__ import annotations

from typing import Any

import keras

from gradguard import _compat
from gradguard.findings import Finding

__all__ = ["collapsed"]

# Layers that keep a linear model linear (an affine map at most, at inference).
_LINEAR = (
    keras.layers.InputLayer,
    keras.layers.Dropout,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.BatchNormalization,
    keras.layers.Rescaling,
    keras.layers.ActivityRegularization,
)


def _linear(activation: Any) -> bool:
    return activation is None or getattr(activation, "__name__", "") == "linear"


def _operations(model: Any) -> list[Any] | None:
    """All that `model` computes, in layers (and a functional model's ops); None if not known."""
    if isinstance(model, keras.Sequential):
        return [layer for layer in _compat.flatten_layers(model) if layer is not model]
    return getattr(model, "operations", None)  # (a functional model's; a subclass has none)


def collapsed(model: Any, step: int) -> Finding | None:
    """`activation-missing` if `model`'s Dense layers compute one linear map, none too narrow."""
    layers = _operations(model)
    if layers is None:
        return None
    dense = [layer for layer in layers if type(layer) is keras.layers.Dense]  # (not a subclass)
    others = [layer for layer in layers if type(layer) is not keras.layers.Dense]
    if len(dense) < 2 or not all(isinstance(layer, _LINEAR) for layer in others):
        return None
    hidden, last = dense[:-1], dense[-1]
    if not all(_linear(layer.activation) for layer in hidden) or not all(d.built for d in dense):
        return None
    inputs, outputs = int(dense[0].kernel.shape[0]), int(last.units)
    if min(int(layer.units) for layer in hidden) < min(inputs, outputs):
        return None  # a linear bottleneck: a rank limit on purpose
    names = ", ".join(layer.name for layer in hidden)
    units = sorted({int(layer.units) for layer in hidden})
    width = " and ".join(str(u) for u in units)
    message = (
        f"The model {getattr(model, 'name', '')!r} is linear: its hidden Dense layers ({names}; "
        f"{width} units) have no activation and nothing between them bends, so with "
        f"{last.name} they compute one linear map of the {inputs} inputs, as a single Dense "
        "layer would: the hidden layers add weights but no capacity, and the model can fit no "
        "more than a linear model. Give the hidden layers an activation: "
        'Dense(units, activation="relu").'
    )
    details = {"layers": [layer.name for layer in hidden], "output": last.name}
    return Finding("activation-missing", message, step, details=details)
