"""A target network whose updates never move it (`staletarget`, `ema-weights-stale`).

A soft update written ``0.99 * target + 0.01 * target`` is found when the watch ends; the right
blend, a hard copy every few steps, and a single initial copy are silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import staletarget
from gradguard.findings import Report


def _net():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])


@pytest.mark.parametrize("update", ["blended-with-itself", "blended", "copied", "copied-once"])
def test_a_target_network_that_never_moves_is_found(update):
    keras.utils.set_random_seed(0)
    online, target = _net(), _net()
    optimizer, rng = keras.optimizers.Adam(1e-2), np.random.default_rng(0)
    report, steps = Report(), 40
    unwatch = staletarget.watch(report, lambda: steps)
    try:
        target.set_weights(online.get_weights())  # the initial copy
        for step in range(steps):
            x = rng.normal(size=(16, 4)).astype("float32")
            y = x.sum(1, keepdims=True) + 0.9 * target(x).numpy()
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(y - online(x)))
            grads = tape.gradient(loss, online.trainable_variables)
            optimizer.apply_gradients(zip(grads, online.trainable_variables))
            mine, theirs = target.get_weights(), online.get_weights()
            if update == "blended-with-itself":
                target.set_weights([0.99 * t + 0.01 * t for t in mine])
            elif update == "blended":
                target.set_weights([0.99 * t + 0.01 * o for t, o in zip(mine, theirs)])
            elif update == "copied" and step % 5 == 4:
                target.set_weights(theirs)
    finally:
        unwatch()
    found = [f for f in report.findings if f.code == "ema-weights-stale"]
    assert bool(found) == (update == "blended-with-itself"), found
    if found:
        assert "called 41 times" in found[0].message and "tau * online" in found[0].message
