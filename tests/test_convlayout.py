"""Channels-first images read by a channels-last convolution (`convlayout`, `channels-first-input`).

Found from the traced graph under `fit` and in a hand-written step: ``(batch, 3, 16, 16)`` and
``(batch, 1, 16, 16)`` into a default ``Conv2D``, ``(batch, 3, 8, 8, 8)`` into a ``Conv3D``.
Silent: channels-last images, a convolution built channels-first, a ``Conv1D`` over a square
``(steps, features)`` input, and a feature map of that shape made by a layer before it.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import convlayout
from gradguard.diagnose import ancestors
from gradguard.guarding import Guard
from gradguard.options import Options

S = 16  # the images' side


def _conv(shape, *layers):
    return keras.Sequential(
        [keras.Input(shape), *layers, keras.layers.Flatten(), keras.layers.Dense(1)]
    )


_MODELS = {  # name: (model, found)
    "rgb-channels-first": (lambda: _conv((3, S, S), keras.layers.Conv2D(4, 3)), True),
    "grey-channels-first": (  # (a 'valid' 3x3 kernel over 1 row: Keras raises)
        lambda: _conv((1, S, S), keras.layers.Conv2D(4, 3, padding="same")),
        True,
    ),
    "video-channels-first": (lambda: _conv((3, 8, 8, 8), keras.layers.Conv3D(2, 3)), True),
    "rescaled-first": (
        lambda: _conv((3, S, S), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3)),
        True,
    ),
    "channels-last": (lambda: _conv((S, S, 3), keras.layers.Conv2D(4, 3)), False),
    "built-channels-first": (
        lambda: _conv((3, S, S), keras.layers.Conv2D(4, 3, data_format="channels_first")),
        False,
    ),
    "conv1d-square": (lambda: _conv((S, S), keras.layers.Conv1D(4, 3)), False),
    "feature-map": (  # (32, 64, 3) strided to (4, 16, 16): the model's own layout
        lambda: _conv(
            (32, 64, 3),
            keras.layers.Conv2D(16, 3, strides=(8, 4), padding="same"),
            keras.layers.Conv2D(4, 3),
        ),
        False,
    ),
}


@pytest.mark.parametrize("name", list(_MODELS))
def test_a_convolution_reading_channels_first_images_is_found_in_the_graph(name):
    build, expected = _MODELS[name]
    model = build()
    found = []

    @tf.function
    def trace(x):
        loss = tf.reduce_mean(model(x))
        found.append(convlayout.graph_channels_first(ancestors(loss), 0))
        return loss

    trace.get_concrete_function(tf.TensorSpec((None, *model.input_shape[1:])))
    assert (found[0] is not None) == expected, found
    if found[0] is not None and name == "rgb-channels-first":
        message = found[0].message
        assert "reads its input (None, 3, 16, 16) as channels-last" in message, message
        assert "np.transpose(x, [0, 2, 3, 1])" in message and "(16, 16, 3)" in message
        assert found[0].details["transpose"] == [0, 2, 3, 1]


def _images(channels_first: bool):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, S, S, 3)).astype("float32")
    y = x[:, : S // 2, :, 0].mean((1, 2))[:, None]
    return (np.transpose(x, (0, 3, 1, 2)) if channels_first else x), y


@pytest.mark.parametrize("channels_first", [True, False])
def test_fit_on_channels_first_images_is_found(channels_first):
    x, y = _images(channels_first)
    keras.utils.set_random_seed(1)
    model = _conv(x.shape[1:], keras.layers.Conv2D(4, 3, activation="relu"))
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    found = [f for f in guard.read(final=True).findings if f.code == "channels-first-input"]
    assert bool(found) == channels_first, found
    if found:
        assert found[0].severity.value == "warning" and "(32, 3, 16, 16)" in found[0].message


@pytest.mark.parametrize("channels_first", [True, False])
def test_a_hand_written_step_on_channels_first_images_is_found(channels_first):
    x, y = _images(channels_first)
    keras.utils.set_random_seed(1)
    model = _conv(x.shape[1:], keras.layers.Conv2D(4, 3, activation="relu"))
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(0, 64, 32):
        step(x[i : i + 32], y[i : i + 32])
    codes = [f.code for f in step.report().findings]
    assert ("channels-first-input" in codes) == channels_first, codes
