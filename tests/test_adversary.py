"""A cross-entropy subtracted with the head that computes it (`adversary`).

Found from the traced graph of a hand-written step (`head-trained-to-lose`): DANN's domain loss
subtracted instead of reversed, in Keras' binary cross-entropy on logits and in a softmax
cross-entropy of attribute ids. Silent: a gradient-reversal layer with the loss added; the
predictor's step of adversarial debiasing (the adversary not trained by it); unlearning by
gradient ascent (nothing shared); a counter-term that reads the same head as the task.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import lossgraph

FEATURES = 6
LAMBDA = 0.5


def _models():
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(16, "relu")])
    task = keras.Sequential([keras.Input((16,)), keras.layers.Dense(1)])
    adversary = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(3)]
    )
    return encoder, task, adversary


@tf.custom_gradient
def _reverse_gradient(x):
    return tf.identity(x), lambda dy: -LAMBDA * dy


_BCE = keras.losses.BinaryCrossentropy(from_logits=True)


def _domains(x_source, x_target):
    """0 for the source batch, 1 for the target batch: constants made in the step."""
    return tf.concat([tf.zeros_like(x_source[:, :1]), tf.ones_like(x_target[:, :1])], axis=0)


def _dann_subtracted(encoder, task, adversary, x, y, x_target):
    features = encoder(x)
    both = tf.concat([features, encoder(x_target)], axis=0)
    domain = _BCE(_domains(x, x_target), adversary(both)[:, :1])
    return _BCE(y[:, None], task(features)) - LAMBDA * domain


def _dann_reversed(encoder, task, adversary, x, y, x_target):
    features = encoder(x)
    both = _reverse_gradient(tf.concat([features, encoder(x_target)], axis=0))
    domain = _BCE(_domains(x, x_target), adversary(both)[:, :1])
    return _BCE(y[:, None], task(features)) + domain


def _attribute_subtracted(encoder, task, adversary, x, y, x_target):
    """Adversarial debiasing in one loss: the attribute's softmax cross-entropy subtracted."""
    features = encoder(x)
    attribute = tf.cast(x[:, 0] > 0, tf.int32) + tf.cast(x[:, 1] > 0, tf.int32)
    leak = tf.nn.sparse_softmax_cross_entropy_with_logits(attribute, adversary(features))
    return _BCE(y[:, None], task(features)) - LAMBDA * tf.reduce_mean(leak)


def _unlearning(encoder, task, adversary, x, y, x_target):
    """Gradient ascent on a forget set: the whole model raises its loss, nothing is shared."""
    return -_BCE(y[:, None], task(encoder(x)))


def _counter_term_on_the_task_head(encoder, task, adversary, x, y, x_target):
    """A complementary label's likelihood lowered through the task's own head."""
    logits = task(encoder(x))
    return _BCE(y[:, None], logits) - 0.1 * _BCE(1.0 - y[:, None], logits)


@pytest.mark.parametrize(
    "loss_of, trains, found",
    [
        (_dann_subtracted, "all", True),
        (_attribute_subtracted, "all", True),
        (_dann_reversed, "all", False),
        # The predictor's update of adversarial debiasing: its adversary trains in its own.
        (_attribute_subtracted, "predictor", False),
        (_unlearning, "all", False),
        (_counter_term_on_the_task_head, "all", False),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else str(v),
)
def test_a_head_maximizing_its_own_cross_entropy_is_found(loss_of, trains, found):
    encoder, task, adversary = models = _models()
    variables = encoder.trainable_variables + task.trainable_variables
    if trains == "all":
        variables += adversary.trainable_variables
    read = []

    @tf.function
    def trace(x, y, x_target):
        loss = loss_of(*models, x, y, x_target)
        read.extend(lossgraph.graph_findings(loss, 0, variables))
        return loss

    spec = tf.TensorSpec([None, FEATURES])
    trace.get_concrete_function(spec, tf.TensorSpec([None]), spec)
    codes = [f.code for f in read]
    assert ("head-trained-to-lose" in codes) == found, codes
    if found:
        (finding,) = (f for f in read if f.code == "head-trained-to-lose")
        # The head, not the shared encoder nor the task's head, is named.
        assert finding.details["head"] == sorted(v.path for v in adversary.trainable_variables)


@pytest.mark.parametrize("reversed_", [False, True], ids=["subtracted", "reversal-layer"])
def test_dann_without_a_reversal_layer_is_found_by_the_guard(reversed_):
    encoder, task, adversary = models = _models()
    variables = [v for m in models for v in m.trainable_variables]
    optimizer = keras.optimizers.Adam(1e-3)
    loss_of = _dann_reversed if reversed_ else _dann_subtracted

    @tf.function
    @gradguard.guard(models, optimizer)
    def train_step(x, y, x_target):
        with tf.GradientTape() as tape:
            loss = loss_of(*models, x, y, x_target)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(0)
    for _ in range(3):  # a batch of fixed size: the domain labels are constants in the graph
        x, x_target = (rng.normal(size=(2, 32, FEATURES)) + [[[0.0]], [[1.0]]]).astype("float32")
        train_step(x, (x[:, 0] > 0).astype("float32"), x_target)
    found = [f for f in train_step.report().findings if f.code == "head-trained-to-lose"]
    assert bool(found) != reversed_, train_step.report()
    if found:
        assert "gradient-reversal layer" in found[0].message
