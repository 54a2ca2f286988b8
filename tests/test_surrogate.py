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
from gradguard.guarding import Guard
from gradguard.options import Options

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


# A TD error against a target network: the target side reads only the target's variables.
def _td_error(net, target, s, r):
    return tf.reduce_mean(tf.square(r + 0.9 * target(s)[:, 0] - net(s)[:, 0]))


def _huber_to_target(net, target, s, r):
    return keras.losses.Huber()(r + 0.9 * target(s)[:, 0], net(s)[:, 0])


def _supervised_error(net, target, s, r):  # labels are data
    return tf.reduce_mean(tf.square(r - net(s)[:, 0]))


def _frozen_base_under_a_head(net, target, s, r):  # another network's features, then trained
    return tf.reduce_mean(tf.square(r - net(target(s))[:, 0]))


@pytest.mark.parametrize(
    "loss_of, moving",
    [
        (_td_error, True),
        (_huber_to_target, True),
        (_supervised_error, False),
        (_frozen_base_under_a_head, False),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else str(v),
)
def test_an_error_against_another_networks_output_is_a_moving_target(loss_of, moving):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    target = keras.Sequential([keras.layers.Dense(STATES)])
    net.build((None, STATES)), target.build((None, STATES))  # (its variables captured, not made)
    read = []

    @tf.function
    def trace(s, r):
        loss = loss_of(net, target, s, r)
        read.append(losslevel.graph_moving_target(loss, net.trainable_variables))
        return loss

    trace.get_concrete_function(tf.TensorSpec([None, STATES]), tf.TensorSpec([None]))
    assert read == [moving]


def test_td_learning_whose_loss_rises_as_the_values_grow_is_not_told_its_loss_rose():
    # hunt29 h04: the values of a 20-state random walk learnt from a target network synced
    # every 50 updates; the TD target's noise grows with the values, so the loss rises.
    keras.utils.set_random_seed(15)
    rng, states, gamma = np.random.default_rng(15), 20, 0.9
    net = keras.Sequential(
        [keras.Input((states,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    target = keras.models.clone_model(net)
    target.set_weights(net.get_weights())
    optimizer, eye = keras.optimizers.Adam(3e-3), np.eye(states, dtype="float32")

    @tf.function
    def td_step(s, r, s2, done):
        y = r + gamma * (1.0 - done) * target(s2)[:, 0]
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - net(s, training=True)[:, 0]))
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return loss

    step = gradguard.guard(net, optimizer, policy=WARN_ALL)(td_step)
    losses = []
    for i in range(1500):
        s = rng.integers(1, states - 1, size=64)
        s2 = s + np.where(rng.random(64) < 0.5, 1, -1)
        done = np.isin(s2, (0, states - 1)).astype("float32")
        losses.append(float(step(eye[s], np.ones(64, "float32"), eye[s2], done)))
        if i % 50 == 49:
            target.set_weights(net.get_weights())
    assert np.mean(losses[-100:]) > 2 * np.mean(losses[:100])  # the TD loss rose ...
    values = net(eye).numpy()[1:-1, 0]
    assert values.min() > 2.0 and values.max() > 5.0  # ... as the values grew towards 3.7-9.8
    assert "loss-not-decreasing" not in {f.code for f in step.report().findings}


def _eager_policy_gradient(act_alone: bool, rng: np.random.Generator) -> list[str]:
    """An eager REINFORCE agent acting on one state at a time (or, `act_alone` False, on all
    its states at once), updated once per step of its 12-step episodes; the finding codes."""
    model, optimizer = _policy(), keras.optimizers.Adam(1e-2)
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        for episode in range(25):
            states = rng.normal(size=(12, STATES)).astype("float32")
            if act_alone:
                probs = np.concatenate([model(s[None]).numpy() for s in states])
            else:
                probs = model(states).numpy()
            actions = (rng.random(12) < probs[:, 1]).astype("int32")
            rewards = (actions == (states[:, 0] > 0)).astype("float32")
            returns = np.cumsum(rewards[::-1])[::-1] * (1 + episode / 5)  # longer episodes
            for s, a, g in zip(states, actions, returns):
                with tf.GradientTape() as tape:
                    loss = -tf.math.log(model(s[None], training=True)[0, a] + 1e-8) * g
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return [f.code for f in guard.read(final=True).findings]


@pytest.mark.parametrize("act_alone", [True, False])
def test_an_eager_agent_acting_between_its_updates_is_not_told_its_loss_rose(act_alone):
    # hunt29 f04: an eager REINFORCE, its loss -log p(a) * G rising with the returns. Acting on
    # one state at a time outside the tape is what an agent does; a batch of 12 is an
    # evaluation's, and the loss's trend is judged again.
    codes = _eager_policy_gradient(act_alone, np.random.default_rng(0))
    assert ("loss-not-decreasing" in codes) != act_alone, codes
