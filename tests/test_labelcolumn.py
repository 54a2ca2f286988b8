"""A label that is one of the inputs' values (`labels-in-inputs`, one label an example).

A target column left among a table's features and a window that holds its own target are found
under `fit`; a feature that predicts the label well, a forecast of the next value, an
autoencoder, constant labels and a run too short to tell stay silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import gradguard
from gradguard import labelcolumn

RNG = np.random.default_rng(0)
N = 512
FEATURES = RNG.normal(size=(N, 6)).astype("float32")
TARGET = (FEATURES @ RNG.normal(size=6)).astype("float32")
CLASSES = RNG.integers(0, 3, size=N)
SERIES = np.sin(0.3 * np.arange(N + 9)).astype("float32") + RNG.normal(size=N + 9).astype(
    "float32"
) * np.float32(0.05)
WINDOWS = np.stack([SERIES[i : i + 8] for i in range(N)])[..., None]  # (N, 8, 1)
AGREEING = (RNG.random(N) < 0.5).astype("float32")
NOISY = np.where(RNG.random(N) < 0.97, AGREEING, 1.0 - AGREEING)  # agrees 97% of the time


def _fit(x: np.ndarray, y: np.ndarray, loss: str = "mse", epochs: int = 1) -> list[str]:
    keras.utils.set_random_seed(0)
    width = 3 if loss == "sparse_categorical_crossentropy" else y.shape[-1] if y.ndim > 1 else 1
    model = keras.Sequential(
        [keras.Input(x.shape[1:]), keras.layers.Flatten(), keras.layers.Dense(width)]
    )
    model.compile(keras.optimizers.Adam(1e-2), loss)
    callback = gradguard.GuardCallback(policy={c: "warn" for c in gradguard.CODES})
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[callback])
    return [f for f in callback.report().findings if f.code == "labels-in-inputs"]


@pytest.mark.parametrize(
    "x, y, loss, where",
    [
        # The target column left in the features (the last one).
        (np.c_[FEATURES, TARGET], TARGET, "mse", [6]),
        # Class ids left in the features, as floats, for a sparse cross-entropy.
        (
            np.c_[CLASSES.astype("float32"), FEATURES],
            CLASSES,
            "sparse_categorical_crossentropy",
            [0],
        ),
        # timeseries_dataset_from_array(series, targets=series): each window's own first value.
        (WINDOWS, SERIES[:N], "mse", [0, 0]),
    ],
    ids=["target-column", "class-column", "window-start"],
)
def test_a_label_in_every_example_of_the_inputs_is_found(x, y, loss, where):
    (finding,) = _fit(x, y, loss)
    assert finding.details["input_position"] == where
    assert finding.details["examples"] == N
    assert "the target is among the inputs" in finding.message


@pytest.mark.parametrize(
    "x, y, epochs",
    [
        (np.c_[FEATURES, NOISY], AGREEING, 2),  # a feature that agrees with the label 97%
        (WINDOWS, SERIES[8 : N + 8], 1),  # the value after each window: a forecast
        (WINDOWS[:, :, 0], WINDOWS[:, :, 0], 1),  # an autoencoder: all of its inputs
        (np.c_[FEATURES, np.zeros(N, "float32")], np.zeros(N, "float32"), 1),  # one label
        (np.c_[FEATURES, TARGET][:128], TARGET[:128], 1),  # too few examples to tell
    ],
    ids=["predictive-feature", "next-value", "autoencoder", "constant-labels", "few-examples"],
)
def test_labels_not_copied_from_the_inputs_stay_silent(x, y, epochs):
    assert labelcolumn.MIN_EXAMPLES > 128
    assert _fit(x, y, epochs=epochs) == []
