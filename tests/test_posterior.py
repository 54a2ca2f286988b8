"""A VAE whose posterior collapsed onto the prior (`posterior`, `posterior-collapsed`).

Found: a reconstruction averaged over the features against a KL summed over the latents (the
KL weighs D times too much), in a guarded loop and in a `train_step` override under `fit`,
the KL written as Keras writes it or as ``0.5 * sum(exp(v) + m**2 - 1 - v)``. Silent: the
reconstruction summed over the features (the ELBO), a run shorter than `STEPS`, a Gaussian
negative log-likelihood (``log var`` and ``exp``, no KL).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import posterior

FEATURES, LATENT = 32, 2
RNG = np.random.default_rng(12)
CODES = RNG.normal(size=(512, LATENT))
X = (1 / (1 + np.exp(-CODES @ RNG.normal(size=(LATENT, FEATURES)) * 2))).astype("float32")


class VAE(keras.Model):
    """An MLP VAE: its loss's reconstruction averaged (`mean`) or summed over the features."""

    def __init__(self, reduction: str, kl_form: str = "keras"):
        super().__init__()
        keras.utils.set_random_seed(12)
        self.reduction, self.kl_form = reduction, kl_form
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.mean = keras.layers.Dense(LATENT)
        self.log_var = keras.layers.Dense(LATENT)
        self.decoder = keras.Sequential(
            [keras.layers.Dense(32, activation="relu"), keras.layers.Dense(FEATURES, "sigmoid")]
        )
        self.seeds = keras.random.SeedGenerator(12)

    def build(self, input_shape):
        self.loss_of(tf.zeros((1, FEATURES)))  # (makes every layer's weights)

    def call(self, x):
        return self.decoder(self.mean(self.hidden(x)))

    def loss_of(self, x):
        h = self.hidden(x)
        m, v = self.mean(h), self.log_var(h)
        z = m + tf.exp(0.5 * v) * keras.random.normal(tf.shape(m), seed=self.seeds)
        bce = keras.losses.binary_crossentropy(x, self.decoder(z))  # (a mean over features)
        reconstruction = tf.reduce_mean(bce if self.reduction == "mean" else bce * FEATURES)
        if self.kl_form == "keras":
            kl = -0.5 * (1 + v - tf.square(m) - tf.exp(v))
        else:
            kl = 0.5 * (tf.exp(v) + tf.square(m) - 1.0 - v)
        return reconstruction + tf.reduce_mean(tf.reduce_sum(kl, axis=1))

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss = self.loss_of(data)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


def _guarded_run(vae: VAE, steps: int) -> gradguard.Report:
    optimizer = keras.optimizers.Adam(3e-3)
    vae.build(X.shape)

    @tf.function
    @gradguard.guard(vae, optimizer)
    def step(x):
        with tf.GradientTape() as tape:
            loss = vae.loss_of(x)
        grads = tape.gradient(loss, vae.trainable_variables)
        optimizer.apply_gradients(zip(grads, vae.trainable_variables))
        return loss

    for i in range(steps):
        start = (i * 32) % len(X)
        step(X[start : start + 32])
    return step.report()


@pytest.mark.parametrize(
    "reduction, kl_form, steps, found",
    [
        ("mean", "keras", posterior.STEPS + 20, True),
        ("mean", "expanded", posterior.STEPS + 20, True),
        ("sum", "keras", posterior.STEPS + 20, False),
        ("mean", "keras", posterior.STEPS - 20, False),  # (too short to tell)
    ],
)
def test_a_collapsed_posterior_is_found_in_a_guarded_loop(reduction, kl_form, steps, found):
    report = _guarded_run(VAE(reduction, kl_form), steps)
    collapsed = [f for f in report.findings if f.code == "posterior-collapsed"]
    assert bool(collapsed) == found, report
    if found:
        assert collapsed[0].details["kl_nats"] < posterior.COLLAPSED
        assert "averaged over the D features" in collapsed[0].message


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_collapsed_posterior_is_found_in_a_train_step_override_under_fit(reduction):
    vae = VAE(reduction)
    vae.compile(keras.optimizers.Adam(3e-3))
    callback = gradguard.GuardCallback()
    vae.fit(X, epochs=14, batch_size=32, verbose=0, callbacks=[callback])  # (224 steps)
    kl = [
        f.details["kl_nats"] for f in callback.report().findings if f.code == "posterior-collapsed"
    ]
    assert bool(kl) == (reduction == "mean"), kl


def test_a_gaussian_negative_log_likelihood_is_no_kl():
    """``0.5 * (v + (y - m)**2 / exp(v))``: a log-variance and its exp, but no KL of it."""
    keras.utils.set_random_seed(12)
    inputs = keras.Input((FEATURES,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    optimizer = keras.optimizers.Adam(1e-2)
    y = X[:, :1] * 3.0

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(x, y):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            m, v = out[:, :1], out[:, 1:]
            loss = tf.reduce_mean(0.5 * (v + tf.square(y - m) / tf.exp(v)) + 0.0 * tf.square(m))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(posterior.STEPS + 20):
        start = (i * 32) % len(X)
        step(X[start : start + 32], y[start : start + 32])
    assert "posterior-collapsed" not in {f.code for f in step.report().findings}
