"""A loss term that subtracts or divides out its own copy (`selfcancel`, `term-cancels-itself`).

Found from the traced graph of a hand-written step: PPO's ratio with the "old" log-probabilities
recomputed from the current actor in the tape, a KL divergence to such an "old" policy, a
quotient of probabilities. Silent: the stored log-probabilities, one side under
`tf.stop_gradient`, two passes through dropout (each its own draw), two different inputs.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import selfcancel
from gradguard.diagnose import ancestors

STATES, ACTIONS = 6, 3


def _actor(dropout: float = 0.0):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((STATES,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(ACTIONS),
        ]
    )


def _log_prob(logits, actions):
    return tf.reduce_sum(tf.nn.log_softmax(logits) * tf.one_hot(actions, ACTIONS), axis=1)


def _ratio_recomputed(actor, s, a, adv, stored):
    ratio = tf.exp(_log_prob(actor(s, training=True), a) - _log_prob(actor(s), a))
    return -tf.reduce_mean(tf.minimum(ratio * adv, tf.clip_by_value(ratio, 0.8, 1.2) * adv))


def _kl_to_recomputed(actor, s, a, adv, stored):
    new, old = tf.nn.log_softmax(actor(s)), tf.nn.log_softmax(actor(s))
    return tf.reduce_mean(tf.reduce_sum(tf.exp(old) * (old - new), axis=1))


def _probability_quotient(actor, s, a, adv, stored):
    new = tf.reduce_sum(tf.nn.softmax(actor(s)) * tf.one_hot(a, ACTIONS), axis=1)
    old = tf.reduce_sum(tf.nn.softmax(actor(s)) * tf.one_hot(a, ACTIONS), axis=1)
    return -tf.reduce_mean(new / old * adv)


def _ratio_stored(actor, s, a, adv, stored):
    ratio = tf.exp(_log_prob(actor(s, training=True), a) - stored)
    return -tf.reduce_mean(ratio * adv)


def _ratio_stop_gradient(actor, s, a, adv, stored):
    old = tf.stop_gradient(_log_prob(actor(s), a))
    return -tf.reduce_mean(tf.exp(_log_prob(actor(s), a) - old) * adv)


def _two_inputs(actor, s, a, adv, stored):  # a consistency loss between two views
    return tf.reduce_mean(tf.square(actor(s) - actor(s * 0.5)))


@pytest.mark.parametrize(
    "loss_of, found",
    [
        (_ratio_recomputed, True),
        (_kl_to_recomputed, True),
        (_probability_quotient, True),
        (_ratio_stored, False),
        (_ratio_stop_gradient, False),
        (_two_inputs, False),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else str(v),
)
def test_a_term_computed_against_its_own_copy_is_found(loss_of, found):
    actor, read = _actor(), []

    @tf.function
    def trace(s, a, adv, stored):
        loss = loss_of(actor, s, a, adv, stored)
        read.append(selfcancel.graph_term_cancels_itself(ancestors(loss), 0))
        return loss

    specs = [tf.TensorSpec([None, STATES]), tf.TensorSpec([None], tf.int32)]
    trace.get_concrete_function(*specs, tf.TensorSpec([None]), tf.TensorSpec([None]))
    assert (read[0] is not None) == found, read
    if read[0] is not None:
        assert "always 0 and its gradient is always 0" in read[0].message or found


def test_two_passes_through_dropout_are_not_copies():
    actor, read = _actor(dropout=0.5), []

    @tf.function
    def trace(s):
        loss = tf.reduce_mean(tf.square(actor(s, training=True) - actor(s, training=True)))
        read.append(selfcancel.graph_term_cancels_itself(ancestors(loss), 0))
        return loss

    trace.get_concrete_function(tf.TensorSpec([None, STATES]))
    assert read == [None]


@pytest.mark.parametrize("recomputed", [True, False])
def test_ppo_recomputing_its_old_log_probabilities_in_the_tape_is_found(recomputed):
    actor, optimizer = _actor(), keras.optimizers.Adam(1e-2)
    rng = np.random.default_rng(0)

    @tf.function
    @gradguard.guard(actor, optimizer)
    def update(s, a, adv, stored):
        with tf.GradientTape() as tape:
            loss = (_ratio_recomputed if recomputed else _ratio_stored)(actor, s, a, adv, stored)
        grads = tape.gradient(loss, actor.trainable_variables)
        optimizer.apply_gradients(zip(grads, actor.trainable_variables))
        return loss

    for _ in range(3):
        s = rng.normal(size=(32, STATES)).astype("float32")
        a = rng.integers(0, ACTIONS, 32).astype("int32")
        logits = actor(s).numpy()
        stored = (logits - np.log(np.exp(logits).sum(1, keepdims=True)))[np.arange(32), a]
        update(s, a, rng.normal(size=32).astype("float32"), stored.astype("float32"))
    found = [f for f in update.report().findings if f.code == "term-cancels-itself"]
    assert bool(found) == recomputed, found
    if found:
        assert "exp(log_p - log_p) = 1" in found[0].message
