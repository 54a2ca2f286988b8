"""`weights-copied-as-constant`: a layer computing with a constant copy of a trained variable
(a tied decoder's transposed kernel taken in `build`), read from a traced loss's graph."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import weightcopy
from gradguard.diagnose import ancestors

X = np.random.default_rng(0).normal(size=(8, 12)).astype("float32")


class TiedDecoder(keras.layers.Layer):
    """Decodes with its encoder's kernel, transposed: in `call`, or copied in `build`."""

    def __init__(self, encoder: keras.layers.Dense, copy: str | None = None):
        super().__init__()
        self.encoder, self.copy = encoder, copy

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(12,), initializer="zeros")
        if self.copy == "eager":
            self.kernel_t = tf.transpose(self.encoder.kernel)  # (hunt22 p09)
        elif self.copy == "numpy":
            self.kernel_t = self.encoder.kernel.numpy().T

    def call(self, inputs):
        kernel_t = tf.transpose(self.encoder.kernel) if self.copy is None else self.kernel_t
        return tf.matmul(inputs, kernel_t) + self.bias


def autoencoder(copy: str | None) -> keras.Model:
    encoder = keras.layers.Dense(4)
    inputs = keras.Input((12,))
    return keras.Model(inputs, TiedDecoder(encoder, copy)(encoder(inputs)))


def judged(model: keras.Model, penalty=None):
    """The finding for one traced step of `model` (and a `penalty` of it added to its loss)."""
    found = []

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - x))
            loss += 0.0 if penalty is None else penalty()
        variables = model.trainable_variables
        tape.gradient(loss, variables)
        found.append(weightcopy.graph_weights_copied(loss, ancestors(loss), variables, step=5))
        return loss

    step(X)
    return found[0]


@pytest.mark.parametrize("copy", ["eager", "numpy"])
def test_a_copy_of_the_encoder_kernel_taken_in_build_is_found(copy):
    model = autoencoder(copy)
    finding = judged(model)
    assert finding is not None and finding.code == "weights-copied-as-constant"
    kernel = model.layers[1].kernel
    assert finding.details == {"variable": kernel.path, "shape": [12, 4]}
    assert repr(kernel.path) in finding.message and finding.step == 5


def test_the_kernel_transposed_in_call_is_silent():
    assert judged(autoencoder(None)) is None


def test_a_penalty_toward_the_starting_weights_is_silent():
    model = autoencoder(None)
    start = [tf.identity(v) for v in model.trainable_variables]  # (L2-SP: eager copies)

    def penalty():
        return tf.add_n(
            [tf.reduce_sum(tf.square(v - s)) for v, s in zip(model.trainable_variables, start)]
        )

    assert judged(model, penalty) is None


def test_fixed_constants_that_copy_no_variable_are_silent():
    projection = tf.constant(np.random.default_rng(1).normal(size=(12, 12)).astype("float32"))
    inputs = keras.Input((12,))
    dense = keras.layers.Dense(12, bias_initializer="zeros")
    fixed = keras.layers.Lambda(lambda t: tf.matmul(t, projection))  # (a fixed random projection)
    assert judged(keras.Model(inputs, dense(fixed(inputs)))) is None
    # A zero start state beside a variable of zeros of the same size: equal, but not weights.
    zeros = keras.layers.Dense(12, kernel_initializer="zeros")
    start = keras.layers.Lambda(lambda t: t + tf.matmul(t, tf.zeros((12, 12))))
    assert judged(keras.Model(inputs, zeros(start(inputs)))) is None


def test_a_frozen_copy_of_the_old_model_kept_as_a_reference_is_silent():
    # Learning without forgetting (hunt24 h04): the old model's logits from constant copies of
    # the starting weights, a target for a KL term; they multiply the data, not a variable's.
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(12)])
    kernel, bias = [tf.constant(v.numpy()) for v in model.trainable_variables]

    def keep_old():
        old = tf.nn.softmax(tf.matmul(X, kernel) + bias)
        return tf.reduce_mean(keras.losses.kl_divergence(old, tf.nn.softmax(model(X))))

    assert judged(model, keep_old) is None
