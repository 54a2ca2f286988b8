"""`training-flag-missing`: a model called without training=True runs its BatchNormalization in
inference mode; called with training=True, or its base told training=False on purpose, it is
not reported."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL

import gradguard
from gradguard import modes


class _TrainingByDefault(keras.layers.BatchNormalization):
    """A normalization whose call defaults to training mode: told nothing, it trains."""

    def call(self, inputs, training=True, mask=None):
        return super().call(inputs, training=training, mask=mask)


def _model(norm: type | None = None) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16),
            (norm or keras.layers.BatchNormalization)(name="bn"),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(0.2, name="drop"),
            keras.layers.Dense(1),
        ]
    )


@pytest.mark.parametrize(
    "call,steps,found",
    [
        ("untold", 30, True),
        ("untold", modes.MIN_UPDATES - 5, False),  # too few updates to judge
        ("training", 30, False),
        ("inference", 30, False),  # told training=False: a pretrained base kept so
        ("untold-trains-by-default", 30, False),  # its moving statistics moved
        # Statistics computed in a pass of their own, then kept (frozen BN statistics while
        # fine-tuning): not as initialized.
        ("untold-after-a-statistics-pass", 30, False),
    ],
)
@pytest.mark.parametrize("compiled", [True, False], ids=["tf.function", "eager"])
def test_a_model_called_without_training_runs_batchnorm_in_inference(call, steps, found, compiled):
    model = _model(_TrainingByDefault if call.endswith("by-default") else None)
    optimizer = keras.optimizers.Adam(1e-3)
    told = {"training": {"training": True}, "inference": {"training": False}}

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - model(x, **told.get(call, {}))))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step = gradguard.guard(model, optimizer, every=10, policy=WARN_ALL)(
        tf.function(train_step) if compiled else train_step
    )
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(32, 6)) * 4 + 2).astype("float32")
    y = x[:, :1] - x[:, 1:2]
    if call.endswith("statistics-pass"):
        model(x, training=True)
    for _ in range(steps):
        step(x, y)
    flagged = [f for f in step.report().findings if f.code == "training-flag-missing"]
    assert bool(flagged) == found
    if found:
        (finding,) = flagged
        assert finding.details["layers"] == ["bn"]
        assert finding.details["dropout"] == ["drop"]
        assert "model(x, training=True)" in finding.message
