"""`normalization-not-adapted`: a `keras.layers.Normalization` never adapted before raw inputs.

Keras 3 builds it with mean 0 and variance 1 and passes the inputs through: found when its
inputs are far from standardized; an adapted layer, one given its statistics, and one left an
identity over inputs already standardized stay silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL

import gradguard
from gradguard.unadapted import never_adapted

_RNG = np.random.default_rng(0)
_RAW = (1000 + 300 * _RNG.normal(size=(256, 8))).astype("float32")  # prices, say
_LABELS = ((_RAW - 1000) @ _RNG.normal(size=8) > 0).astype("float32")


def _classifier(normalization):
    return keras.Sequential(
        [
            keras.Input((8,)),
            normalization,
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def _normalization(kind):
    if kind == "given-mean-and-variance":
        return keras.layers.Normalization(mean=1000.0, variance=300.0**2)
    layer = keras.layers.Normalization()
    if kind == "adapted":
        layer.adapt(_RAW)
    return layer


@pytest.mark.parametrize(
    "kind,inputs,found",
    [
        ("never-adapted", "raw", True),
        ("adapted", "raw", False),
        ("given-mean-and-variance", "raw", False),
        ("never-adapted", "standardized", False),
    ],
)
def test_fit_behind_a_normalization_never_adapted_is_told(kind, inputs, found):
    keras.utils.set_random_seed(0)
    model = _classifier(_normalization(kind))
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    x = _RAW if inputs == "raw" else (_RAW - _RAW.mean(0)) / _RAW.std(0)
    guard = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, _LABELS, batch_size=32, epochs=1, verbose=0, callbacks=[guard])
    flagged = [f for f in guard.report().findings if f.code == "normalization-not-adapted"]
    assert bool(flagged) == found, str(guard.report())
    if found:
        assert flagged[0].details["layer"] == model.layers[0].name
        assert flagged[0].details["input_scale"] > 500  # the features' mean, about 1000
        assert f"{model.layers[0].name}.adapt(x_train)" in flagged[0].message


@pytest.mark.parametrize("mode", ["graph", "jit", "eager"])
def test_train_step_behind_a_normalization_never_adapted_is_told(mode):
    keras.utils.set_random_seed(0)
    model = _classifier(keras.layers.Normalization())
    step = gradguard.TrainStep(
        model,
        keras.optimizers.Adam(1e-3),
        "binary_crossentropy",
        policy=WARN_ALL,
        jit_compile=mode == "jit",
        run_eagerly=mode == "eager",
    )
    for start in range(0, 96, 32):
        step(_RAW[start : start + 32], _LABELS[start : start + 32, None])
    flagged = [f for f in step.report().findings if f.code == "normalization-not-adapted"]
    assert [f.details["layer"] for f in flagged] == [model.layers[0].name], str(step.report())


def test_train_step_behind_an_adapted_normalization_is_silent():
    keras.utils.set_random_seed(0)
    step = gradguard.TrainStep(
        _classifier(_normalization("adapted")), keras.optimizers.Adam(1e-3), "binary_crossentropy"
    )
    for start in range(0, 96, 32):
        step(_RAW[start : start + 32], _LABELS[start : start + 32, None])
    assert "normalization-not-adapted" not in step.report().codes(), str(step.report())


def _hand_written_steps(normalization, where, eager):
    """A guarded step over a classifier, `normalization` in the model or called before the tape."""
    keras.utils.set_random_seed(0)
    model = _classifier(normalization if where == "in-the-model" else keras.layers.Identity())
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.BinaryCrossentropy()

    if not normalization.built:  # (its variables made before a tf.function traces it)
        normalization.build((None, 8))

    def train_step(x, y):
        if where == "before-the-tape":  # the batch standardized first, then the forward pass
            x = normalization(x)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step = gradguard.guard(model, optimizer, policy=WARN_ALL)(
        train_step if eager else tf.function(train_step)
    )
    for start in range(0, 96, 32):
        step(_RAW[start : start + 32], _LABELS[start : start + 32, None])
    return step.report()


@pytest.mark.parametrize("where", ["in-the-model", "before-the-tape"])
@pytest.mark.parametrize("eager", [False, True])
def test_a_hand_written_step_behind_a_normalization_never_adapted_is_told(where, eager):
    normalization = keras.layers.Normalization()
    report = _hand_written_steps(normalization, where, eager)
    flagged = [f for f in report.findings if f.code == "normalization-not-adapted"]
    assert [f.details["layer"] for f in flagged] == [normalization.name], str(report)
    # Adapted late, after training started: no longer reported as never adapted.
    normalization.adapt(_RAW)
    assert not never_adapted(normalization)


def test_a_hand_written_step_behind_an_adapted_normalization_before_the_tape_is_silent():
    report = _hand_written_steps(_normalization("adapted"), "before-the-tape", eager=False)
    assert "normalization-not-adapted" not in report.codes(), str(report)


def _fit_guarded(model):
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    guard = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(_RAW, _LABELS, batch_size=32, epochs=1, verbose=0, callbacks=[guard])
    return [f for f in guard.report().findings if f.code == "normalization-not-adapted"]


def test_fit_in_mixed_precision_behind_a_normalization_never_adapted_is_told():
    # The loss scaler applies the update in a conditional's branch, which reads the layer's
    # input from the step's graph enclosing it.
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        flagged = _fit_guarded(_classifier(keras.layers.Normalization()))
    finally:
        keras.config.set_dtype_policy("float32")
    assert flagged


def test_a_normalization_given_weights_without_finalize_state_is_told():
    # set_weights assigns the adapted statistics but leaves the layer computing with those it
    # was built with (mean 0, variance 1): a clone of an adapted model is an identity.
    keras.utils.set_random_seed(0)
    clone = keras.models.clone_model(_classifier(_normalization("adapted")))
    clone.set_weights(_classifier(_normalization("adapted")).get_weights())
    (finding,) = _fit_guarded(clone)
    assert "although its weights hold adapted ones" in finding.message
    assert f"{clone.layers[0].name}.finalize_state()" in finding.message
