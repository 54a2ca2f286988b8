"""`gradient-of-predictions`: the gradients applied are those of the model's output itself.

``tape.gradient(y_pred, ...)`` where the loss was meant lowers the sum of the logits whatever
the labels. Real loops under the guard (traced and eager) and a `fit` with its own
`train_step` under ``gradguard run``; the loss differentiated, the outputs' gradient chained by
hand (`output_gradients`), a saliency map beside a healthy update, and a model that returns its
loss per example stay silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL

import gradguard
from gradguard.guarding import Guard
from gradguard.options import Options

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(64, 8)).astype("float32")
_Y = (_X[:, 0] > 0).astype("int32") + (_X[:, 1] > 0).astype("int32")
_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _classifier(name: str = "classifier") -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)],
        name=name,
    )


def _step(model, optimizer, target: str):
    """One hand-written step; `target`: what it differentiates and applies."""

    def train_step(x, y):
        with tf.GradientTape(persistent=target in ("saliency", "chained")) as tape:
            tape.watch(x)
            logits = model(x, training=True)
            loss = _CE(y, logits)
        variables = model.trainable_variables
        if target == "predictions":
            grads = tape.gradient(logits, variables)
        elif target == "predictions-clipped":
            grads, _ = tf.clip_by_global_norm(tape.gradient(logits, variables), 1.0)
            grads = [tf.clip_by_value(g * 0.5, -1.0, 1.0) for g in grads]
        elif target == "chained":  # d loss / d logits, pushed through the outputs by hand
            grads = tape.gradient(logits, variables, output_gradients=tape.gradient(loss, logits))
        else:
            if target == "saliency":  # read, not applied
                tape.gradient(logits, x)
            grads = tape.gradient(loss, variables)
            if target == "loss-clipped":
                grads, _ = tf.clip_by_global_norm(grads, 1.0)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return train_step


_TARGETS = ["predictions", "loss", "chained", "saliency", "loss-clipped"]


# Clipped gradients are followed back through the traced graph; an eager tensor has no history.
@pytest.mark.parametrize(
    "target, traced",
    [*((t, m) for t in _TARGETS for m in (True, False)), ("predictions-clipped", True)],
    ids=lambda v: {True: "tf-function", False: "eager"}.get(v, v),
)
def test_the_gradient_of_the_predictions_applied_is_found(target, traced):
    model, optimizer = _classifier(), keras.optimizers.Adam(1e-2)
    train_step = _step(model, optimizer, target)
    step = gradguard.guard(model, optimizer, policy=WARN_ALL, every=5)(
        tf.function(train_step) if traced else train_step
    )
    losses = [float(step(tf.constant(_X), _Y)) for _ in range(30)]
    found = [f for f in step.report().findings if f.code == "gradient-of-predictions"]
    if target.startswith("predictions"):
        (finding,) = found
        assert finding.details["model"] == "classifier", finding.details
        assert finding.details["shape"][-1] == 3
        assert "tape.gradient(loss, model.trainable_variables)" in finding.message
        assert losses[-1] >= losses[0]  # (what the finding says: the loss does not fall)
    else:
        assert not found, found
        assert losses[-1] < losses[0]


def test_a_model_returning_its_loss_per_example_is_silent():
    """Labels are one of its inputs; its output, differentiated, is the loss (summed)."""
    keras.utils.set_random_seed(0)
    x, y = keras.Input((8,)), keras.Input((), dtype="int32")
    logits = keras.layers.Dense(3)(x)
    per_example = keras.layers.Lambda(lambda t: _CE.call(t[0], t[1]))([y, logits])
    model, optimizer = keras.Model([x, y], per_example), keras.optimizers.SGD(0.01)

    @gradguard.guard(model, optimizer, policy=WARN_ALL, every=5)
    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = model([x, y], training=True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    for _ in range(5):
        step(_X, _Y)
    assert "gradient-of-predictions" not in step.report().codes()


class OwnStep(keras.Model):
    """A model with its own Keras 3 `train_step`, differentiating `TARGET`."""

    target = "predictions"

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        grads = tape.gradient(
            y_pred if self.target == "predictions" else loss, self.trainable_weights
        )
        self.optimizer.apply(grads, self.trainable_weights)
        return {"loss": loss}


@pytest.mark.parametrize("target", ["predictions", "loss"])
def test_run_finds_it_in_a_models_own_train_step(target):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    model = OwnStep(inputs, keras.layers.Dense(3)(inputs))
    model.target = target
    model.compile(keras.optimizers.Adam(1e-2), _CE)
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(_X, _Y, batch_size=16, epochs=2, verbose=0)
    codes = guard.read(final=True).codes()
    assert ("gradient-of-predictions" in codes) == (target == "predictions"), codes


def test_one_head_of_a_dict_output_differentiated_is_found():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    heads = {"a": keras.layers.Dense(3)(inputs), "b": keras.layers.Dense(2)(inputs)}
    model, optimizer = keras.Model(inputs, heads, name="two_heads"), keras.optimizers.SGD(0.01)

    @gradguard.guard(model, optimizer, policy=WARN_ALL, every=5)
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
        grads = tape.gradient(outputs["a"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    for _ in range(3):
        step(_X)
    (found,) = [f for f in step.report().findings if f.code == "gradient-of-predictions"]
    assert found.details["model"] == "two_heads"
