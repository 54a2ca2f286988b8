"""A policy gradient whose advantage trains the critic (`actorcritic`, `advantage-not-stopped`).

Found: ``-log pi(a|s) * (R - V(s))`` with V from the value head the update trains, the
log-probability written as a sparse cross-entropy, a log of gathered probabilities or picked
log-softmax values, the advantage a return or a TD error. Silent: V under `tf.stop_gradient`,
advantages computed outside the tape, an entropy bonus, PPO's ratio, a cross-entropy weighted
by data or by the model's own confidence.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard

STATES, ACTIONS, BATCH = 6, 4, 32
RNG = np.random.default_rng(9)
S = RNG.normal(size=(4, BATCH, STATES)).astype("float32")
A = RNG.integers(0, ACTIONS, size=(4, BATCH)).astype("int32")
R = RNG.uniform(size=(4, BATCH)).astype("float32")


def _actor_critic() -> keras.Model:
    keras.utils.set_random_seed(9)
    inputs = keras.Input((STATES,))
    trunk = keras.layers.Dense(16, activation="relu", name="trunk")(inputs)
    policy = keras.layers.Dense(ACTIONS, name="policy")(trunk)
    value = keras.layers.Dense(1, name="value")(trunk)
    return keras.Model(inputs, [policy, value])


def _policy_loss(form: str, s, a, r, logits, value, model):
    """The actor term of one `form` (the critic's MSE is added by the step)."""
    if form == "sparse-ce":
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(a, logits) * (r - value)
        )
    if form == "log-gather":
        picked = tf.gather(tf.nn.softmax(logits), a, batch_dims=1)
        return -tf.reduce_mean(tf.math.log(picked + 1e-8) * (r - value))
    if form == "one-hot-td-error":
        log_p = tf.reduce_sum(tf.one_hot(a, ACTIONS) * tf.nn.log_softmax(logits), axis=1)
        _, next_value = model(s[::-1])
        td_error = r + 0.9 * next_value[:, 0] - value
        return -tf.reduce_mean(log_p * td_error)
    if form == "stopped":
        advantage = r - tf.stop_gradient(value)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(a, logits) * advantage)
    if form == "entropy-bonus":  # (data advantages; p * log p is one model's entropy)
        p = tf.nn.softmax(logits)
        entropy = -tf.reduce_sum(p * tf.nn.log_softmax(logits), axis=1)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(a, logits)
        return tf.reduce_mean(ce * r - 0.01 * entropy)
    if form == "ppo-ratio":
        log_p = -tf.nn.sparse_softmax_cross_entropy_with_logits(a, logits)
        ratio = tf.exp(log_p - tf.stop_gradient(log_p) + 0.0)
        return -tf.reduce_mean(tf.minimum(ratio * r, tf.clip_by_value(ratio, 0.8, 1.2) * r))
    if form == "confidence-weighted":  # (focal-like: 1 - p weighs the cross-entropy, by design)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(a, logits)
        return tf.reduce_mean((1.0 - tf.exp(-ce)) * ce)
    raise AssertionError(form)


@pytest.mark.parametrize(
    "form, found",
    [
        ("sparse-ce", True),
        ("log-gather", True),
        ("one-hot-td-error", True),
        ("stopped", False),
        ("entropy-bonus", False),
        ("ppo-ratio", False),
        ("confidence-weighted", False),
    ],
)
def test_an_advantage_the_update_differentiates_is_found(form, found):
    model, optimizer = _actor_critic(), keras.optimizers.Adam(1e-3)

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(s, a, r):
        with tf.GradientTape() as tape:
            logits, value = model(s, training=True)
            value = value[:, 0]
            actor = _policy_loss(form, s, a, r, logits, value, model)
            loss = actor + 0.5 * tf.reduce_mean(tf.square(r - value))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(4):
        step(S[i], A[i], R[i])
    flagged = [f for f in step.report().findings if f.code == "advantage-not-stopped"]
    assert bool(flagged) == found, flagged
    if found:
        assert flagged[0].details["critic"] == ["value/bias", "value/kernel"], flagged[0].details
        assert "tf.stop_gradient(values)" in flagged[0].message


def test_advantages_computed_outside_the_tape_are_data():
    model, optimizer = _actor_critic(), keras.optimizers.Adam(1e-3)

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(s, a, advantage):
        with tf.GradientTape() as tape:
            logits, _ = model(s, training=True)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(a, logits)
            loss = tf.reduce_mean(ce * advantage)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(4):
        _, value = model(S[i])
        step(S[i], A[i], R[i] - value[:, 0])
    assert "advantage-not-stopped" not in {f.code for f in step.report().findings}
