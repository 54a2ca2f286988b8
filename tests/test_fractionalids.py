"""`embedding-ids-fractional`: an `Embedding` fed float ids that are not whole numbers.

Keras casts them to int32, truncating: found through `fit` and a hand-written step (graph and
eager); integer ids, and ids held as floats but whole, stay silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL

import gradguard

_RNG = np.random.default_rng(0)
_IDS = _RNG.integers(0, 40, size=256)
_TARGETS = _RNG.normal(size=(40, 1)).astype("float32")[_IDS]
_IDS_AS = {
    "scaled": (_IDS / 39).astype("float32"),  # min-max scaled with the other features
    "int": _IDS.astype("int32"),
    "whole-floats": _IDS.astype("float32"),
}


def _regressor():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((), dtype="float32"),
            keras.layers.Embedding(40, 4),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1),
        ]
    )


def _flagged(report, model):
    flagged = [f for f in report.findings if f.code == "embedding-ids-fractional"]
    if flagged:
        assert flagged[0].details["layer"] == model.layers[0].name
        assert flagged[0].details["fractional_share"] > 0.8  # all but the ids 0 and 39
        assert "truncates" in flagged[0].message
    return bool(flagged)


@pytest.mark.parametrize("ids", list(_IDS_AS))
def test_fit_feeding_an_embedding_fractional_ids_is_told(ids):
    model = _regressor()
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    guard = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(_IDS_AS[ids], _TARGETS, batch_size=32, epochs=1, verbose=0, callbacks=[guard])
    assert _flagged(guard.report(), model) == (ids == "scaled"), str(guard.report())


@pytest.mark.parametrize("eager", [False, True])
@pytest.mark.parametrize("ids", ["scaled", "whole-floats"])
def test_a_hand_written_step_feeding_an_embedding_fractional_ids_is_told(eager, ids):
    model, optimizer = _regressor(), keras.optimizers.Adam(1e-2)

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    step = gradguard.guard(model, optimizer, policy=WARN_ALL)(
        train_step if eager else tf.function(train_step)
    )
    for start in range(0, 96, 32):
        step(_IDS_AS[ids][start : start + 32], _TARGETS[start : start + 32])
    assert _flagged(step.report(), model) == (ids == "scaled"), str(step.report())
