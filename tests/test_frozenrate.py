"""A traced step sets the learning rate to a Python value (`frozenrate`).

`learning-rate-frozen-at-trace`: ``optimizer.learning_rate = current_lr`` inside a
`tf.function`, `current_lr` a Python float the loop changes, is read once when the step is
traced. Silent: the rate passed in as a tensor or as a Python argument (a trace per value),
the rate the optimizer already holds set again, computed in the graph from
``optimizer.iterations``, set outside the function, set in a `tf.cond` branch, a
`LearningRateSchedule`, an eager step.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard

FEATURES = 4
RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, FEATURES)).astype("float32")
Y = X[:, :1] * 2.0


def _net():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])


def _train(net, optimizer, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(y - net(x, training=True)))
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))
    return loss


class _Loop:
    """A warm-up computed in Python, handed to the step one of several ways."""

    def __init__(self, how: str):
        self.how, self.rate = how, 0.0
        self.net = _net()
        rate = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)
        held = 0.0 if how == "assign-tiny-over-zero" else 0.01  # (a rate of 0 until warm-up)
        self.optimizer = keras.optimizers.SGD(rate if how == "schedule" else held)
        self.step = self._step()

    def _step(self):
        how, net, optimizer = self.how, self.net, self.optimizer

        def step(x, y, rate=None):
            if how in ("global", "eager"):
                optimizer.learning_rate = self.rate
            elif how == "assign-literal":
                optimizer.learning_rate.assign(0.001)
            elif how == "assign-tiny-over-zero":
                optimizer.learning_rate.assign(1e-9)
            elif how == "assign-its-own-rate":
                optimizer.learning_rate.assign(0.01)
            elif how in ("tensor-argument", "python-argument"):
                optimizer.learning_rate = rate
            elif how == "from-iterations":
                warm = tf.cast(optimizer.iterations + 1, tf.float32) / 100.0
                optimizer.learning_rate = 0.01 * tf.minimum(1.0, warm)
            elif how == "in-a-cond":
                if optimizer.iterations < 5:
                    optimizer.learning_rate = 0.001
                else:
                    optimizer.learning_rate = 0.01
            return _train(net, optimizer, x, y)

        traced = step if how == "eager" else tf.function(step)
        return gradguard.guard(net, optimizer)(traced)

    def run(self, steps: int = 4) -> gradguard.Report:
        for i in range(steps):
            self.rate = 0.01 * (i + 1) / steps
            if self.how == "outside":
                self.optimizer.learning_rate = self.rate
            if self.how == "tensor-argument":
                self.step(X, Y, tf.constant(self.rate))
            elif self.how == "python-argument":
                self.step(X, Y, self.rate)
            else:
                self.step(X, Y)
        return self.step.report()


@pytest.mark.parametrize(
    "how, found",
    [
        ("global", True),
        ("assign-literal", True),
        ("assign-tiny-over-zero", True),  # (1e-9 is not the 0 held: no absolute tolerance)
        ("assign-its-own-rate", False),
        ("tensor-argument", False),
        ("python-argument", False),
        ("from-iterations", False),
        ("in-a-cond", False),
        ("outside", False),
        ("schedule", False),
        ("eager", False),
    ],
)
def test_a_learning_rate_set_to_a_python_value_in_a_traced_step_is_found(how, found):
    report = _Loop(how).run()
    frozen = [f for f in report.findings if f.code == "learning-rate-frozen-at-trace"]
    assert bool(frozen) == found, report
    if found:
        expected = {"global": 0.0025, "assign-literal": 0.001, "assign-tiny-over-zero": 1e-9}
        assert frozen[0].details["value"] == pytest.approx(expected[how], rel=1e-6)
        assert "SGD's learning rate to a constant" in frozen[0].message


class Warmup(keras.Model):
    """A custom train_step that sets the rate from a Python attribute a callback moves."""

    def __init__(self, from_attribute: bool):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.from_attribute, self.rate = from_attribute, 0.001

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        if self.from_attribute:
            self.optimizer.learning_rate = self.rate
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - self(x, training=True)))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


@pytest.mark.parametrize("from_attribute", [True, False])
def test_a_custom_train_step_setting_its_rate_from_an_attribute_is_found_under_fit(
    from_attribute,
):
    model = Warmup(from_attribute)
    model.compile(keras.optimizers.Adam(0.01))
    guard = gradguard.GuardCallback()
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[guard])
    frozen = [f for f in guard.report().findings if f.code == "learning-rate-frozen-at-trace"]
    assert bool(frozen) == from_attribute, guard.report()
