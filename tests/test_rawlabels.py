"""Raw labels a hand-written loss breaks (`rawlabels`, `labels-out-of-range`): classes numbered
1..C one-hot encoded with depth C, and labels 0/1 in a hinge, are found; ``y - 1``, -1 or 255
as a "no class" row, labels -1/+1 and `keras.losses.Hinge` stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard.guarding import Guard
from gradguard.options import Options
from gradguard.rawlabels import RawLabels

C = 4


class OneHotStep(keras.Model):
    """A classifier whose overridden train_step one-hot encodes its labels (`shift` first)."""

    def __init__(self, shift: int):
        super().__init__()
        self.shift = shift
        self.dense = keras.layers.Dense(C)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        target = tf.one_hot(y - self.shift if self.shift else y, C)
        with tf.GradientTape() as tape:
            loss = keras.losses.categorical_crossentropy(target, self(x), from_logits=True)
            loss = tf.reduce_mean(loss)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


def _data(first: int):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 6)).astype("float32")
    return x, (x[:, :C].argmax(1) + first).astype("int32")


@pytest.mark.parametrize("labels", ["1..C", "1..C shifted", "-1 ignored", "255 ignored"])
def test_labels_past_the_one_hot_depth_are_found(labels):
    x, y = _data(first=0 if labels.endswith("ignored") else 1)
    if labels.endswith("ignored"):
        y[::5] = int(labels.split()[0])  # rows of zeros on purpose (a segmentation's void)
    keras.utils.set_random_seed(1)
    model = OneHotStep(shift=1 if labels == "1..C shifted" else 0)
    model.compile(keras.optimizers.Adam(1e-2))
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    found = [f for f in guard.read(final=True).findings if f.code == "labels-out-of-range"]
    assert bool(found) == (labels == "1..C"), found
    if found:
        assert "tf.one_hot(labels, depth=4)" in found[0].message, found[0].message
        assert found[0].details["labels"] == [1.0, 4.0]


def test_a_guarded_loop_one_hot_encoding_labels_from_one_is_found():
    x, y = _data(first=1)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(C)])
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(tf.one_hot(y, C), logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(0, 256, 32):
        step(x[i : i + 32], y[i : i + 32])
    codes = [f.code for f in step.report().findings]
    assert "labels-out-of-range" in codes, codes


@pytest.mark.parametrize("hinge", ["0/1", "-1/+1", "keras Hinge on 0/1"])
def test_a_hinge_given_labels_0_and_1_is_found(hinge):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")[:, None]
    y = 2 * y - 1 if hinge == "-1/+1" else y
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(0.1)

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(x, y):
        with tf.GradientTape() as tape:
            f = model(x, training=True)
            if hinge == "keras Hinge on 0/1":
                loss = keras.losses.Hinge()(y, f)
            else:
                loss = tf.reduce_mean(tf.maximum(0.0, 1.0 - y * f))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(0, 256, 32):
        step(x[i : i + 32], y[i : i + 32])
    found = [f for f in step.report().findings if f.code == "labels-out-of-range"]
    assert bool(found) == (hinge == "0/1"), found
    if found:
        assert "labels -1 and +1 (2 * y - 1)" in found[0].message


def test_a_maximum_of_two_zeros_is_no_hinge():
    """`max(0, 0)` (a constant floor folded away) has no margin to read: skipped, no error."""
    raw = RawLabels()

    @tf.function
    def loss(x):
        loss = tf.reduce_mean(x) + tf.maximum(0.0, tf.zeros(()))
        raw.watch(0, loss)
        return loss

    assert float(loss(tf.ones((2, 3)))) == 1.0
    assert raw.findings(step=1) == []


@pytest.mark.parametrize(
    "labels, entry",
    [
        *[
            (labels, entry)
            for labels in ("scaled", "whole floats", "ints")
            for entry in ("decorator", "fit")
        ],
        ("scaled, floored", "decorator"),  # (Keras' own step cannot floor them)
    ],
)
def test_class_ids_scaled_into_fractions_are_found(labels, entry):
    """Classes 0..3 min-max scaled with the features (0, 0.33, 0.67, 1): a sparse cross-entropy
    casts them all to class 0 but for the last."""
    x, y = _data(first=0)
    if labels.startswith("scaled"):
        y = (y / (C - 1)).astype("float32")
    elif labels == "whole floats":
        y = y.astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(C)])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if entry == "fit":
        model.compile(keras.optimizers.Adam(1e-2), loss_fn)
        guard = Guard(options=Options.create(), raise_errors=False)
        with guard.instrument_process():
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        report = guard.read(final=True)
    else:
        optimizer = keras.optimizers.Adam(1e-2)

        @tf.function
        @gradguard.guard(model, optimizer)
        def step(x, y):
            if labels.endswith("floored"):  # (hunt11: the code's own cast, a floor on purpose)
                y = tf.cast(y * (C - 1) + 0.5, tf.int32)
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

        for i in range(0, 256, 32):
            step(x[i : i + 32], y[i : i + 32])
        report = step.report()
    found = [f for f in report.findings if f.code == "labels-out-of-range"]
    assert bool(found) == (labels == "scaled"), found
    if found:
        assert "not whole numbers" in found[0].message and "method='nearest'" in found[0].message
        assert found[0].details["fractions"][1] == pytest.approx(2 / 3, abs=1e-6)
