"""Where a NaN came from: each planted origin found and named, in every mode, with no cost on
healthy steps (the batch is kept only on the step that went non-finite)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import MODES, mode_kwargs, regression_data

import gradguard


@keras.saving.register_keras_serializable("gradguard_tests")
class LogLayer(keras.layers.Layer):
    """log of its input: NaN for a negative one."""

    def call(self, x):
        return tf.math.log(x)


class ExpActivation(keras.layers.Layer):
    """A custom activation that overflows: exp of a large input."""

    def call(self, x):
        return tf.exp(x * 100.0)


class SqrtNorm(keras.layers.Layer):
    """Divides by sqrt of the squared inputs: finite forward, Inf gradient at 0."""

    def call(self, x):
        return tf.sqrt(tf.square(x))


def _model(culprit: keras.layers.Layer, name: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    bad = culprit(hidden) if name != "culprit_first" else culprit(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(bad), name="net")


def _planted(kind: str):
    x, y = regression_data()
    if kind == "log-of-negative":
        model = _model(LogLayer(name="log"), "net")
        return model, x, y, "forward", "log", "Log"
    if kind == "exp-overflow":
        model = _model(ExpActivation(name="exp"), "net")
        return model, x * 10, y, "forward", "exp", "Exp"
    if kind == "sqrt-at-zero":
        model = _model(SqrtNorm(name="sqrt"), "net")
        # The hidden layer's output is exactly 0 for a zero input row: sqrt'(0) is Inf.
        x = x.copy()
        x[:] = 0.0
        model.get_layer("hidden").set_weights([np.zeros((8, 4), "float32"), np.zeros(4, "float32")])
        return model, x, y, "backward", "sqrt", "SqrtGrad"
    raise ValueError(kind)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["log-of-negative", "exp-overflow", "sqrt-at-zero"])
def test_the_first_layer_that_went_non_finite_is_named(kind, mode):
    model, x, y, stage, layer, op = _planted(kind)
    step = gradguard.TrainStep(
        model,
        keras.optimizers.SGD(1e-3),
        keras.losses.MeanSquaredError(),
        every=4,
        policy={"non-finite": "warn"},
        **mode_kwargs(mode),
    )
    for _ in range(3):
        step(x, y)
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    origin = finding.details["origin"]
    assert origin["stage"] == stage, finding.message
    assert origin["layer"] == layer and origin["op"] == op, origin
    assert origin["step"] == 0 and f"layer {layer}" in finding.message
    if mode == "jit":
        assert "replayed without XLA" in finding.message


@pytest.mark.parametrize(
    "kind, op, advice",
    [
        ("log-of-zero", "Log", "log(0)"),
        # Finite predictions 1e20 from their targets: the square overflows, not a log.
        ("squared-error-overflow", "Square", "Standardize the targets"),
    ],
)
def test_a_loss_that_went_non_finite_is_the_loss_with_its_ops_advice(kind, op, advice):
    x, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="relu")])
    model.layers[0].set_weights([np.zeros((8, 1), "float32"), np.zeros(1, "float32")])
    if kind == "log-of-zero":
        loss_fn = lambda yt, yp: tf.reduce_mean(tf.math.log(yp))  # noqa: E731
    else:
        loss_fn, y = keras.losses.MeanSquaredError(), y * 1e20
    step = gradguard.TrainStep(
        model, keras.optimizers.SGD(1e-3), loss_fn, policy={"non-finite": "warn"}
    )
    step(x, y)
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    assert finding.details["origin"]["stage"] == "loss"
    assert finding.details["origin"]["op"] == op
    assert advice in finding.message, finding.message
    wrong = "log(0)" if kind == "squared-error-overflow" else "overflows float32"
    assert wrong not in finding.message, finding.message


def test_healthy_steps_keep_nothing():
    x, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    step = gradguard.TrainStep(model, keras.optimizers.SGD(1e-3), "mse")
    for _ in range(5):
        step(x, y)
    assert step._keeper is not None and step._keeper.kept() is None


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_the_guard_names_the_layer_from_the_model_input(compiled):
    model, x, y, stage, layer, op = _planted("log-of-negative")
    optimizer = keras.optimizers.SGD(1e-3)

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step = gradguard.guard(model, optimizer, every=4, policy={"non-finite": "warn"})(
        tf.function(train_step) if compiled else train_step
    )
    for _ in range(3):
        step(x, y)
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    assert finding.details["origin"]["stage"] == "forward", finding.message
    assert finding.details["origin"]["layer"] == "log"
    assert finding.details["origin"]["op"] == "Log"


def test_guard_callback_replays_the_whole_step_inside_fit():
    model, x, y, stage, layer, op = _planted("sqrt-at-zero")
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    callback = gradguard.GuardCallback(every=2, policy={"non-finite": "warn"})
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    (finding,) = [f for f in callback.report().findings if f.code == "non-finite"]
    origin = finding.details["origin"]
    assert (origin["stage"], origin["layer"], origin["op"]) == (stage, layer, op), finding.message


def test_a_float16_epsilon_that_rounds_to_zero_is_the_update():
    x, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(4, dtype="float16", name="half"),
            keras.layers.Dense(1, dtype="float16"),
        ]
    )
    # In float16, epsilon 1e-8 is 0: the first update divides by sqrt(0) where a gradient is 0.
    model.get_layer("half").set_weights([np.zeros((8, 4), "float16"), np.zeros(4, "float16")])
    step = gradguard.TrainStep(
        model, keras.optimizers.Adam(1e-3, epsilon=1e-8), "mse", policy={"non-finite": "warn"}
    )
    for _ in range(3):
        step(x.astype("float16"), y.astype("float16"))
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    assert finding.details["origin"]["stage"] == "update", finding.message
    assert "epsilon" in finding.message


def test_an_empty_batch_is_the_data():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.BatchNormalization()])
    found = gradguard.origin.trace(model, np.zeros((0, 8), "float32"))
    assert found is not None and found.stage == "data", found
    assert "empty batch" in found.describe()


def test_the_replay_runs_on_the_weights_kept_from_before_the_update():
    """`gradguard run` applies non-finite updates: the kept weights, not the NaN ones, replay."""
    model, x, y, stage, layer, op = _planted("log-of-negative")
    kept = [(w, w.numpy()) for w in model.trainable_weights]
    for w in model.trainable_weights:
        w.assign(np.full(w.shape, np.nan, "float32"))
    found = gradguard.origin.trace(model, x, weights=kept)
    assert (found.stage, found.layer, found.op) == (stage, layer, op), found
    assert all(np.isnan(w.numpy()).all() for w in model.trainable_weights)  # put back as found
    assert gradguard.origin.trace(model, x).stage == "update"  # without them: the NaN weights


@pytest.mark.parametrize("scale", [1e10, 1e5], ids=["exploding", "large-but-measurable"])
def test_finite_gradients_too_large_for_float32_are_named_exploding(scale):
    """Gradient norms above ~1.8e19 overflow when squared in float32: not NaN, exploding."""
    x, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, name="head")])
    step = gradguard.TrainStep(
        model, keras.optimizers.SGD(1e-3), "mse", policy={"non-finite": "warn"}
    )
    step(x * scale, y * scale)
    found = [f for f in step.report().findings if f.code == "non-finite"]
    if scale < 1e6:  # a gradient norm of about 1e11: measured, and applied
        assert not found, found
        return
    (finding,) = found
    origin = finding.details["origin"]
    assert (origin["stage"], origin["layer"]) == ("backward", "head"), finding.message
    assert origin["exploding_norm"] > 1.8e19, origin
    assert "finite but exploding" in finding.message and "scale the inputs" in finding.message
