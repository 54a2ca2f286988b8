"""A trained variable the loss falls with for ever (`unbounded`, `loss-has-no-minimum`).

Found from the traced graph: learned uncertainty weights without their ``+ s`` term, a loss weight
trained as ``w * loss``; and a log-scale the model computes whose log-determinant term has the
wrong sign (a flow's, a Gaussian's). Silent: Kendall's weighting with its ``+ s``; a learned log
standard deviation in a Gaussian likelihood; SAC's temperature (a factor of unknown sign); a
Lagrange multiplier times a ReLU (0 once its constraint holds); a learned softmax temperature; a
weight with a Keras constraint; the model's own kernels.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import lossgraph

FEATURES = 5


def _setup(constraint=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(2)])
    scale = keras.Variable(np.zeros(2, "float32"), name="log_vars")
    scale.constraint = constraint  # (as add_weight(constraint=...) sets it)
    return model, scale


def _errors(model, x, y):
    """Each task's mean squared error: never negative."""
    return tf.reduce_mean(tf.square(y - model(x)), axis=0)


def _uncertainty_without_log_var(model, s, x, y):
    return tf.reduce_sum(tf.exp(-s) * _errors(model, x, y))


def _uncertainty(model, s, x, y):  # Kendall et al.: the + s holds it at the noise level
    return tf.reduce_sum(tf.exp(-s) * _errors(model, x, y) + s)


def _learned_loss_weights(model, s, x, y):
    return tf.reduce_sum(s * _errors(model, x, y))


def _gaussian_log_std(model, s, x, y):
    return tf.reduce_sum(0.5 * tf.exp(-2.0 * s) * _errors(model, x, y) + s)


def _sac_temperature(model, s, x, y):
    log_pi = tf.nn.log_softmax(model(x))[:, 0]
    return -tf.reduce_mean(s[0] * tf.stop_gradient(log_pi + 1.0))


def _lagrange_multiplier(model, s, x, y):  # dual ascent: still once the constraint holds
    violation = tf.nn.relu(tf.reduce_mean(tf.square(model(x))) - 1.0)
    return tf.reduce_mean(_errors(model, x, y)) - s[0] * tf.stop_gradient(violation)


def _softmax_temperature(model, s, x, y):
    logits = model(x) * tf.exp(s[0])
    labels = tf.cast(y[:, 0] > 0, tf.int32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


@pytest.mark.parametrize(
    "loss_of, direction, constrained",
    [
        (_uncertainty_without_log_var, "grows", False),
        (_learned_loss_weights, "shrinks", False),
        (_uncertainty, None, False),
        (_gaussian_log_std, None, False),
        (_sac_temperature, None, False),
        (_lagrange_multiplier, None, False),
        (_softmax_temperature, None, False),
        (_learned_loss_weights, None, True),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else str(v),
)
def test_a_variable_the_loss_falls_with_for_ever_is_found(loss_of, direction, constrained):
    model, s = _setup(keras.constraints.NonNeg() if constrained else None)
    read = []

    @tf.function
    def trace(x, y):
        loss = loss_of(model, s, x, y)
        read.extend(lossgraph.graph_findings(loss, 0, [*model.trainable_variables, s]))
        return loss

    trace.get_concrete_function(tf.TensorSpec([None, FEATURES]), tf.TensorSpec([None, 2]))
    found = [f for f in read if f.code == "loss-has-no-minimum"]
    assert [f.details["direction"] for f in found] == ([direction] if direction else []), read
    if found:
        assert found[0].variables == (s.path,)


@pytest.mark.parametrize("bounded", [False, True], ids=["without-log-var", "kendall"])
def test_uncertainty_weights_without_their_log_variance_are_found_by_the_guard(bounded):
    model, s = _setup()
    variables = [*model.trainable_variables, s]
    optimizer = keras.optimizers.SGD(0.05)
    loss_of = _uncertainty if bounded else _uncertainty_without_log_var

    @tf.function
    @gradguard.guard(model, optimizer)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_of(model, s, x, y)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(size=(32, FEATURES)).astype("float32")
        train_step(x, np.stack([x[:, 0], 3.0 * x[:, 1]], axis=1))
    found = [f for f in train_step.report().findings if f.code == "loss-has-no-minimum"]
    assert bool(found) != bounded, train_step.report()
    if found:
        assert "exp(-s) * loss + s" in found[0].message


def _log_scale_and_shift(model, x):
    out = model(x)
    return 2.0 * tf.tanh(out[:, :1] / 2.0), out[:, 1:]


def _flow(log_det_sign):
    """An affine flow's negative log-likelihood: z = x * exp(s) + t, log|det| = sum(s)."""

    def loss_of(model, x, y):
        s, t = _log_scale_and_shift(model, x)
        z = y[:, :1] * tf.exp(s) + t
        log_prob = -0.5 * tf.reduce_sum(z**2, 1) + log_det_sign * tf.reduce_sum(s, 1)
        return -tf.reduce_mean(log_prob)

    return loss_of


def _gaussian(log_var_sign, divided):
    """A Gaussian's negative log-likelihood with a log-variance the model predicts."""

    def loss_of(model, x, y):
        log_var, mean = _log_scale_and_shift(model, x)
        error = tf.square(y[:, :1] - mean)
        scaled = error / tf.exp(log_var) if divided else error * tf.exp(-log_var)
        return tf.reduce_mean(0.5 * scaled + log_var_sign * 0.5 * log_var)

    return loss_of


def _vae_kl(model, x, y):
    """The KL of a predicted posterior to N(0, 1), and a reparameterized sample's error."""
    log_var, mean = _log_scale_and_shift(model, x)
    z = mean + tf.exp(0.5 * log_var) * y[:, :1]
    kl = -0.5 * tf.reduce_sum(1.0 + log_var - tf.square(mean) - tf.exp(log_var), 1)
    return tf.reduce_mean(tf.square(z - y[:, 1:]) + kl)


def _gaussian_policy(model, x, y):
    """PPO's ratio of a Gaussian policy, an entropy bonus: the advantages' sign is the data's."""
    log_std, mean = _log_scale_and_shift(model, x)
    log_p = -0.5 * tf.square((y[:, :1] - mean) / tf.exp(log_std)) - log_std
    ratio = tf.exp(log_p - tf.stop_gradient(log_p) + 0.1)
    return -tf.reduce_mean(ratio * y[:, 1:]) - 0.01 * tf.reduce_mean(log_std)


def _poisson(model, x, y):
    """A Poisson log-link: exp(s) - y * s, the counts from the data."""
    log_rate, _ = _log_scale_and_shift(model, x)
    return tf.reduce_mean(tf.exp(log_rate) - tf.abs(y[:, :1]) * log_rate)


@pytest.mark.parametrize(
    "loss_of, direction",
    [
        (_flow(-1.0), "shrinks"),
        (_gaussian(-1.0, divided=True), "grows"),
        (_gaussian(-1.0, divided=False), "grows"),
        (_flow(1.0), None),
        (_gaussian(1.0, divided=True), None),
        (_gaussian(1.0, divided=False), None),
        (_vae_kl, None),
        (_gaussian_policy, None),
        (_poisson, None),
    ],
    ids=[
        "flow-log-det-flipped",
        "gaussian-log-var-subtracted",
        "gaussian-precision-log-var-subtracted",
        "flow",
        "gaussian",
        "gaussian-precision",
        "vae-kl",
        "gaussian-policy",
        "poisson",
    ],
)
def test_a_log_scale_whose_log_determinant_has_the_wrong_sign_is_found(loss_of, direction):
    model, _ = _setup()
    read = []

    @tf.function
    def trace(x, y):
        loss = loss_of(model, x, y)
        read.extend(lossgraph.graph_findings(loss, 0, model.trainable_variables))
        return loss

    trace.get_concrete_function(tf.TensorSpec([None, FEATURES]), tf.TensorSpec([None, 2]))
    found = [f for f in read if f.code == "loss-has-no-minimum"]
    assert [f.details["direction"] for f in found] == ([direction] if direction else []), read
    if found:
        assert "log-determinant" in found[0].message
