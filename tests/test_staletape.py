"""Gradients of a tape recorded before an earlier update, applied (`tape-reused-after-update`).

Real loops under the guard, traced and eager: K updates a batch from one persistent tape are
found; the loss recomputed per update, a GAN's two players from one persistent tape, gradients
taken again after the update only to be logged, and accumulation over micro-batches stay
silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL

import gradguard

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(32, 4)).astype("float32")
_Y = _RNG.normal(size=(32, 1)).astype("float32")


def _model(name: str = "net") -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)], name=name
    )


def _loss(model, x, y):
    return tf.reduce_mean(tf.square(model(x, training=True) - y))


def _step(loop: str, model, optimizer, other, other_optimizer):
    variables = model.trainable_variables

    def clipped(grads):  # (a PPO-style loop clips what it applies)
        return tf.clip_by_global_norm(grads, 0.5)[0] if loop.endswith("clipped") else grads

    def train_step(x, y):
        if loop.startswith("one-tape-k-updates"):
            with tf.GradientTape(persistent=True) as tape:
                loss = _loss(model, x, y)
            for _ in range(3):
                grads = clipped(tape.gradient(loss, variables))
                optimizer.apply_gradients(zip(grads, variables))
        elif loop.startswith("tape-per-update"):
            for _ in range(3):
                with tf.GradientTape() as tape:
                    loss = _loss(model, x, y)
                grads = clipped(tape.gradient(loss, variables))
                optimizer.apply_gradients(zip(grads, variables))
        elif loop == "logged-after":
            with tf.GradientTape(persistent=True) as tape:
                loss = _loss(model, x, y)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            tf.linalg.global_norm(tape.gradient(loss, variables))  # read, not applied
        else:  # "two-players": one persistent tape, an update of each in turn
            with tf.GradientTape(persistent=True) as tape:
                fake = other(x, training=True)
                loss = _loss(model, fake, y)
                their_loss = -loss  # (the other player's: recorded with the same pass)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            theirs = other.trainable_variables
            other_optimizer.apply_gradients(zip(tape.gradient(their_loss, theirs), theirs))
        return loss

    return train_step


@pytest.mark.parametrize("traced", [True, False], ids=["tf-function", "eager"])
@pytest.mark.parametrize(
    "loop",
    [
        "one-tape-k-updates",
        "one-tape-k-updates-clipped",
        "tape-per-update",
        "tape-per-update-clipped",
        "logged-after",
        "two-players",
    ],
)
def test_gradients_of_a_tape_older_than_an_update_are_found(loop, traced):
    model, optimizer = _model(), keras.optimizers.SGD(0.01, momentum=0.9)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)], name="player")
    other_optimizer = keras.optimizers.SGD(0.01)
    train_step = _step(loop, model, optimizer, other, other_optimizer)
    optimizers = [optimizer, other_optimizer]
    step = gradguard.guard([model, other], optimizers, policy=WARN_ALL, every=5)(
        tf.function(train_step) if traced else train_step
    )
    for _ in range(4):
        step(_X, _Y)
    found = [f for f in step.report().findings if f.code == "tape-reused-after-update"]
    # Clipped, they are new tensors: a traced step's graph shows what they were made from.
    stale = loop == "one-tape-k-updates" or (loop == "one-tape-k-updates-clipped" and traced)
    assert bool(found) == stale, found
    if found:
        # Named as the guard's other findings name them: the model's name dropped.
        names = {v.path.removeprefix("net/") for v in model.trainable_variables}
        assert set(found[0].variables) == names and "net/" not in found[0].message
        assert "new tf.GradientTape" in found[0].message
