"""A custom `train_step` that logs a loss tracker it never updates (`loss-not-logged`).

Real `fit` calls under ``gradguard run``'s guard: the tracker returned but never updated (`fit`
logs 0.0 at every epoch), in `train_step` or `test_step` (``val_loss``), with a callback that
watches it, is found; without one, the tracker updated, and a step that logs its loss under
another name, are not.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard.guarding import Guard
from gradguard.options import Options

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(64, 4)).astype("float32")
_Y = (_X[:, :1] > 0).astype("int32")


class Classifier(keras.Model):
    def __init__(self, tracker: str):
        super().__init__()
        self.tracker = tracker
        self.out = keras.layers.Dense(2)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, x, training=False):
        return self.out(x)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        if self.tracker != "never-updated":
            self.loss_tracker.update_state(loss)
        name = "xent" if self.tracker == "logged-as-xent" else "loss"
        return {name: self.loss_tracker.result()}

    def test_step(self, data):  # hunt23 p17: Keras resets the tracker before evaluating
        x, y = data
        loss = self.loss_fn(y, self(x, training=False))
        if self.tracker != "test-step-never-updates":
            self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


@pytest.mark.parametrize(
    "tracker, watched",
    [
        ("never-updated", True),
        ("test-step-never-updates", True),
        ("never-updated", False),  # (the 0.0 only in the logs the user reads)
        ("updated", True),
        ("logged-as-xent", True),
    ],
)
def test_a_loss_tracker_the_step_never_updates_is_found(tracker, watched):
    keras.utils.set_random_seed(0)
    model = Classifier(tracker)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=name, patience=10) for name in ("loss", "val_loss")
    ]
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        history = model.fit(
            _X,
            _Y,
            batch_size=16,
            epochs=3,
            validation_split=0.25,
            callbacks=callbacks if watched else [],
            verbose=0,
        )
    found = [f for f in guard.read(final=True).findings if f.code == "loss-not-logged"]
    zero = [k for k in ("loss", "val_loss") if history.history.get(k) == [0.0, 0.0, 0.0]]
    expected = {"never-updated": ["loss"], "test-step-never-updates": ["val_loss"]}
    assert zero == expected.get(tracker, [])  # (what Keras logs, watched or not)
    assert [f.details["logged"] for f in found] == (zero if watched else [])
    if found:
        assert f"EarlyStopping(monitor={zero[0]!r}) stops after its patience" in found[0].message
        step = "train_step" if tracker == "never-updated" else "test_step"
        assert f"Classifier.{step}" in found[0].message
        assert "self.loss_tracker.update_state(loss)" in found[0].message
