"""`loss-not-scaled`: a LossScaleOptimizer handed the gradients of a loss it never scaled.

Keras 3's loss scaler divides every gradient by its scale (2**15 at first): a hand-written step
that does not take the gradient of ``optimizer.scale_loss(loss)`` updates 2**15 times too
little under SGD. Real loops under the guard; `fit`, which scales the loss itself, is silent.
An eager loop's loss cannot be told from one scaled by hand: there, SGD's steps too small are
`update-too-small`, naming the scale.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL

import gradguard

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(64, 8)).astype("float32")
_Y = (_X[:, :1] > 0).astype("float32")


def _model_and_scaler():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
    return model, keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5))


@pytest.mark.parametrize(
    "scaled", [False, True, "by-hand"], ids=["loss-as-it-is", "scale-loss", "by-hand"]
)
@pytest.mark.parametrize("traced", [True, False], ids=["tf-function", "eager"])
def test_a_loss_scaler_given_an_unscaled_loss_is_found(scaled, traced):
    model, optimizer = _model_and_scaler()
    loss_fn = keras.losses.BinaryCrossentropy()
    if scaled == "by-hand":
        optimizer.build(model.trainable_variables)  # (its dynamic_scale made)

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            if scaled == "by-hand":  # (traced: seen to read the scale)
                target = loss * tf.cast(optimizer.dynamic_scale, loss.dtype)
            else:
                target = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(target, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step = gradguard.guard(model, optimizer, policy=WARN_ALL, every=5)(
        tf.function(train_step) if traced else train_step
    )
    before = model.get_weights()[0].copy()
    for _ in range(10):
        step(_X, _Y)
    moved = np.abs(model.get_weights()[0] - before).max()
    found = [f for f in step.report().findings if f.code == "loss-not-scaled"]
    small = [f for f in step.report().findings if f.code == "update-too-small"]
    if scaled:
        assert not found and moved > 1e-2 and not small
    elif not traced:  # (an eager loss, a number, cannot be told from one scaled by hand...)
        assert moved < 1e-4 and not found
        # ... but SGD's steps, every one below the bar, are told with the scale (hunt26 b13)
        assert len(small) == 1 and "loss scale (3.28e+04)" in small[0].message, small
        assert "optimizer.scale_loss(loss)" in small[0].message
    else:
        assert moved < 1e-4  # (the planted bug: 2**15 times too little)
        assert len(found) == 1 and found[0].step <= 5, [str(f) for f in found]
        assert "SGD" in found[0].message and "scale_loss" in found[0].message


def test_fit_with_a_loss_scaler_scales_its_own_loss():
    model, optimizer = _model_and_scaler()
    model.compile(optimizer, "binary_crossentropy")
    callback = gradguard.GuardCallback(policy=WARN_ALL, every=5)
    model.fit(_X, _Y, batch_size=16, epochs=3, verbose=0, callbacks=[callback])
    assert callback.report().steps_observed == 12
    assert "loss-not-scaled" not in {f.code for f in callback.report().findings}
