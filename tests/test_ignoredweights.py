"""Sample weights `fit` hands a `train_step` override that no loss reads (`ignoredweights`).

Real `fit` calls with `class_weight`, under `GuardCallback` and under a process-wide guard (as
``gradguard run``); the corpus pair runs the bug through the command line.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard.guarding import Guard
from gradguard.options import Options

RNG = np.random.default_rng(0)
X = RNG.normal(size=(256, 4)).astype("float32")
Y = (X[:, :1] > 1.2).astype("float32")  # about 12% positives
CLASS_WEIGHT = {0: 0.57, 1: 4.3}
BCE = keras.losses.BinaryCrossentropy()


class WeightedModel(keras.Model):
    """A classifier whose `train_step` override handles `data` as `kind` says."""

    kind = "dropped"

    def train_step(self, data):
        x, y = data[0], data[1]
        weights = data[2] if len(data) == 3 else None
        with tf.GradientTape(persistent=True) as tape:
            y_pred = self(x, training=True)
            if self.kind == "dropped":  # the weights unpacked, never used
                losses = [BCE(y, y_pred)]
            elif self.kind == "passed":
                losses = [self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=weights)]
            elif self.kind == "by-hand":  # per-example losses times the weights
                per_example = keras.losses.binary_crossentropy(y, y_pred)
                losses = [tf.reduce_mean(per_example * weights)]
            else:  # "one-of-two": a weighted loss and an unweighted penalty, each differentiated
                losses = [BCE(y, y_pred, sample_weight=weights), tf.reduce_mean(y_pred**2)]
        variables = self.trainable_variables
        grads = [tape.gradient(loss, variables) for loss in losses]
        summed = [tf.add_n([g[i] for g in grads]) for i in range(len(variables))]
        self.optimizer.apply_gradients(zip(summed, variables))
        return {"loss": losses[0]}


def _model(kind):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8, "relu")(inputs))
    if kind == "keras":
        model = keras.Model(inputs, outputs)
    else:
        model = WeightedModel(inputs, outputs)
        model.kind = kind
    model.compile(keras.optimizers.Adam(1e-2), BCE)
    return model


def _ignored(kind, entry, class_weight=CLASS_WEIGHT):
    model = _model(kind)
    fit = {"batch_size": 32, "epochs": 1, "verbose": 0, "class_weight": class_weight}
    if entry == "callback":
        callback = gradguard.GuardCallback(policy={"sample-weights-ignored": "warn"})
        model.fit(X, Y, callbacks=[callback], **fit)
        found = callback.report().findings
    else:
        guard = Guard(options=Options.create(), raise_errors=False)
        with guard.instrument_process():
            model.fit(X, Y, **fit)
            found = guard.read(final=True).findings
    return [f for f in found if f.code == "sample-weights-ignored"]


@pytest.mark.parametrize("entry", ["callback", "run"])
def test_class_weights_a_train_step_override_drops_are_found(entry):
    (ignored,) = _ignored("dropped", entry)
    assert "unpack_x_y_sample_weight" in ignored.message and ignored.step == 0


@pytest.mark.parametrize("kind", ["keras", "passed", "by-hand", "one-of-two"])
def test_weights_any_loss_reads_are_silent(kind):
    assert _ignored(kind, "callback") == []


def test_an_override_given_no_weights_is_silent():
    assert _ignored("dropped", "callback", class_weight=None) == []
