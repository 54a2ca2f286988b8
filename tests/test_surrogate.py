"""A policy gradient's surrogate loss: its value follows the returns, so its trend is not judged.

REINFORCE minimizes ``-sum(log p(a) * G)``; as the policy learns, episodes grow longer and the
returns `G` with them, so the surrogate rises while the agent improves (hunt18: two healthy
CartPole runs were told their loss had not decreased). `losslevel.graph_surrogate` reads that
shape from the traced loss: the trained model's log-probabilities weighted per example by data.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL

import gradguard
from gradguard import losslevel

STATES, ACTIONS = 8, 2


def _policy():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((STATES,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(ACTIONS, activation="softmax"),
        ]
    )


def _logits_policy():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((STATES,)), keras.layers.Dense(ACTIONS)])


def _picked_log(model, s, a, w):  # the cookbook's: log of the probability of the action taken
    probs = model(s)
    return -tf.reduce_sum(tf.math.log(tf.gather(probs, a, axis=1, batch_dims=1) + 1e-8) * w)


def _sparse_ce(model, s, a, w):  # tf.nn's cross-entropy on logits, times the returns
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=a, logits=model(s))
    return tf.reduce_mean(ce * w)


def _keras_sample_weight(model, s, a, w):  # a Keras loss with the returns as sample weights
    return keras.losses.SparseCategoricalCrossentropy()(a, model(s), sample_weight=w)


def _one_hot_log_softmax(model, s, a, w):  # labels of the log-probabilities' shape, then G
    log_p = tf.nn.log_softmax(model(s))
    return -tf.reduce_mean(tf.reduce_sum(tf.one_hot(a, ACTIONS) * log_p, -1) * w)


def _plain_ce(model, s, a, w):  # supervised: no weight
    return keras.losses.sparse_categorical_crossentropy(a, model(s), from_logits=True)


def _ce_times_mask(model, s, a, w):  # a 0/1 mask made by a comparison is not a weight
    ce = keras.losses.sparse_categorical_crossentropy(a, model(s), from_logits=True)
    return tf.reduce_sum(ce * tf.cast(tf.not_equal(a, 1), tf.float32))


def _ce_times_fed_coefficient(model, s, a, w):  # one scalar fed for the whole batch
    ce = keras.losses.sparse_categorical_crossentropy(a, model(s), from_logits=True)
    return tf.reduce_mean(ce) * w[0]


def _mse_weighted(model, s, a, w):  # weights per example, but no log-probability
    return tf.reduce_mean(tf.reduce_sum(tf.square(model(s)), -1) * w)


@pytest.mark.parametrize(
    "loss_of, surrogate",
    [
        (_picked_log, True),
        (_sparse_ce, True),
        (_keras_sample_weight, True),
        (_one_hot_log_softmax, True),
        (_plain_ce, False),
        (_ce_times_mask, False),
        (_ce_times_fed_coefficient, False),
        (_mse_weighted, False),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else str(v),
)
def test_a_log_likelihood_weighted_per_example_by_data_is_a_surrogate(loss_of, surrogate):
    model = _policy() if loss_of is _picked_log else _logits_policy()
    read = []

    @tf.function
    def trace(s, a, w):
        loss = tf.reduce_mean(loss_of(model, s, a, w))
        read.append(losslevel.graph_surrogate(loss, model.trainable_variables))
        return loss

    specs = [tf.TensorSpec([None, STATES]), tf.TensorSpec([None], tf.int32), tf.TensorSpec([None])]
    trace.get_concrete_function(*specs)
    assert read == [surrogate]


def test_reinforce_whose_returns_grow_is_not_told_its_loss_rose():
    # A contextual bandit whose returns grow thirtyfold over the run (a curriculum lengthening the
    # episodes): the reward is 1 for the action the state's sign asks for.
    model = _policy()
    optimizer = keras.optimizers.Adam(3e-3)

    @tf.function
    def learn(s, a, g):
        with tf.GradientTape() as tape:
            picked = tf.gather(model(s, training=True), a, axis=1, batch_dims=1)
            loss = -tf.reduce_sum(tf.math.log(picked + 1e-8) * g) / 100.0
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step = gradguard.guard(model, optimizer, policy=WARN_ALL)(learn)
    rng, losses = np.random.default_rng(0), []
    for i in range(300):
        s = rng.normal(size=(64, STATES)).astype("float32")
        a = (rng.random(64) < model(s).numpy()[:, 1]).astype("int32")
        returns = (a == (s[:, 0] > 0)).astype("float32") * (1.0 + 29.0 * i / 300)
        losses.append(float(step(s, a, returns)))
    assert np.mean(losses[-50:]) > np.mean(losses[:50])  # the surrogate rose ...
    s = rng.normal(size=(256, STATES)).astype("float32")
    assert np.mean(model(s).numpy().argmax(-1) == (s[:, 0] > 0)) > 0.8  # ... as the agent learnt
    assert "loss-not-decreasing" not in {f.code for f in step.report().findings}
