"""Mixed precision and gradient accumulation (distribution: test_distributed.py)."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import MODES, WARN_ALL, mlp, mode_kwargs, regression_data

import gradguard
from gradguard import checks


@contextlib.contextmanager
def precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("mode", MODES)
def test_accumulated_micro_batches_equal_one_large_batch(mode):
    x, y = regression_data()
    big_model, micro_model = mlp(), mlp()
    big = gradguard.TrainStep(
        big_model,
        keras.optimizers.Adam(1e-2),
        "mse",
        transform=gradguard.identity(),
        **mode_kwargs(mode),
    )
    micro = gradguard.TrainStep(
        micro_model,
        keras.optimizers.Adam(1e-2),
        "mse",
        transform=gradguard.identity(),
        accumulate=4,
        **mode_kwargs(mode),
    )
    for _ in range(3):
        big(x, y)
        for i in range(4):
            micro(x[i * 16 : (i + 1) * 16], y[i * 16 : (i + 1) * 16])
    assert int(micro.optimizer.iterations.numpy()) == 3  # one update per 4 calls
    for a, b in zip(big_model.weights, micro_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert micro.report().findings == []


def test_accumulation_checks_see_the_accumulated_gradient():
    x, y = regression_data()
    micro = gradguard.TrainStep(
        mlp(), keras.optimizers.SGD(0.0), "mse", accumulate=2, policy=WARN_ALL, every=1
    )
    for _ in range(4):
        micro(x, y)
    assert micro.statistics()["steps"] == 2  # checks ran at the 2 updates, not the 4 calls
    assert "weights-unchanged" in micro.report().codes()


@pytest.mark.parametrize("accumulate", [0, -1, 1.5, True])
def test_accumulate_must_be_a_positive_int(accumulate):
    with pytest.raises(ValueError, match="accumulate must be a positive int"):
        gradguard.TrainStep(mlp(), keras.optimizers.Adam(), "mse", accumulate=accumulate)


@pytest.mark.parametrize("mode", MODES)
def test_mixed_float16_trains_silently_with_unscaled_statistics(mode):
    x, y = regression_data()
    reference = gradguard.TrainStep(mlp(), keras.optimizers.Adam(1e-2), "mse")
    reference(x, y)
    with precision("mixed_float16"):
        model = mlp()
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(1e-2),
            initial_scale=256.0,  # no overflow on the first step
        )
        step = gradguard.TrainStep(model, optimizer, "mse", every=10, **mode_kwargs(mode))
        first = float(step(x, y))
        stats = step.statistics()
        for _ in range(40):
            last = float(step(x, y))
    # The checks see the true gradient, not the one multiplied by the loss scale (256).
    assert stats["grad_norm"] == pytest.approx(reference.statistics()["grad_norm"], rel=1e-2)
    assert last < first
    assert step.report().findings == []


def test_overflow_skips_are_counted_not_reported():
    x, y = regression_data()
    with precision("mixed_float16"):
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(1e-2), initial_scale=2.0**40
        )
        step = gradguard.TrainStep(mlp(), optimizer, "mse", every=5)
        for _ in range(30):
            step(x, y)
    stats = step.statistics()
    assert stats["overflow_skips"] >= 5  # 2**40 overflows float16 until it is halved enough
    assert stats["loss_scale"] < 2.0**40
    assert stats["skipped_updates"] == 0
    assert step.report().findings == []


def test_collapsing_loss_scale_is_reported():
    x, y = regression_data()

    def nan_gradient_loss(y_true, y_pred):  # finite loss, NaN gradient (sqrt at 0)
        return tf.reduce_mean(tf.sqrt(tf.square(y_pred) * 0.0))

    with precision("mixed_float16"):
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2))
        step = gradguard.TrainStep(mlp(), optimizer, nan_gradient_loss, every=5, policy=WARN_ALL)
        for _ in range(25):
            step(x, y)
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    assert "loss scale collapsed" in finding.message
    assert step.statistics()["loss_scale"] < 1.0


def test_bfloat16_trains_silently():
    x, y = regression_data()
    with precision("mixed_bfloat16"):
        step = gradguard.TrainStep(mlp(), keras.optimizers.Adam(1e-2), "mse", every=10)
        first = float(step(x, y))
        for _ in range(30):
            last = float(step(x, y))
    assert last < first
    assert step.report().findings == []


def test_guard_sees_unscaled_gradients_of_a_loss_scale_optimizer():
    x, y = regression_data()
    with precision("mixed_float16"):
        model = mlp()
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(1.0), initial_scale=256.0
        )

        @gradguard.guard(model, optimizer, transform=gradguard.clip_by_global_norm(0.1))
        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = keras.losses.MeanSquaredError()(y, model(x, training=True))
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        before = [v.numpy() for v in model.trainable_variables]
        train_step(x, y)
    delta = [v.numpy() - b for v, b in zip(model.trainable_variables, before)]
    # Clipping acted on the unscaled gradient: the update of SGD(1.0) has norm 0.1.
    assert np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for d in delta)) == pytest.approx(
        0.1, rel=1e-2
    )
    assert train_step.report().findings == []


@pytest.mark.parametrize("steps", [2, 3])
def test_a_keras_optimizer_that_accumulates_updates_on_the_calls_keras_applies(steps):
    # Keras applies on every `steps`-th call; `iterations` counts its updates (the calls //
    # steps in recent Keras), so the calls are told from `_iterations`. The calls that only
    # accumulate are neither updates to judge nor skipped updates.
    model = mlp()
    step = gradguard.TrainStep(
        model,
        keras.optimizers.Adam(1e-2, gradient_accumulation_steps=steps),
        keras.losses.MeanSquaredError(),
        every=1,
    )
    x, y = regression_data()
    moved = []
    for _ in range(3 * steps):
        before = [w.numpy() for w in model.trainable_variables]
        step(x, y)
        moved.append(any((b != w.numpy()).any() for b, w in zip(before, model.trainable_variables)))
    assert moved == [(i + 1) % steps == 0 for i in range(3 * steps)]
    ratio = next(c for c in step.core.checks if isinstance(c, checks.UpdateRatio)).state()
    # Judged on the calls Keras applied, each of which moved every variable.
    assert (ratio["eligible"] == 3).all() and (ratio["unchanged"] == 0).all()
    assert step.statistics()["skipped_updates"] == 0
