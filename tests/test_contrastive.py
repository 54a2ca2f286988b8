"""A contrastive loss whose pair labels mean the opposite (`contrastive`).

`contrastive-labels-inverted`: the paper's loss (0 = similar) given pairs labelled 1 = similar
is found, under `fit` and in a guarded loop, squared or not; the loss in the labels' own
convention, and pair labels that say nothing about the inputs (no pair closer than another at
the start), stay silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import contrastive

DIM, CLASSES, PAIRS = 16, 8, 2048
RNG = np.random.default_rng(6)
CENTERS = RNG.normal(size=(CLASSES, DIM)) * 1.2
LABELS = RNG.integers(0, CLASSES, size=(2, PAIRS))
XA, XB = (CENTERS[c] + RNG.normal(size=(PAIRS, DIM)) * 0.8 for c in LABELS)
XA, XB = XA.astype("float32"), XB.astype("float32")
SAME = (LABELS[0] == LABELS[1]) | (np.arange(PAIRS) % 2 == 0)  # (half the pairs similar)
XB[SAME] = (CENTERS[LABELS[0][SAME]] + RNG.normal(size=(SAME.sum(), DIM)) * 0.8).astype("float32")
SIMILAR_IS_1 = SAME.astype("float32")[:, None]


def _loss(convention: str, squared: bool = True):
    """The contrastive loss written with 0 = similar ("paper") or 1 = similar ("keras")."""

    def loss(y, d):
        y = tf.cast(tf.reshape(y, tf.shape(d)), d.dtype)
        pull, push = (1 - y, y) if convention == "paper" else (y, 1 - y)
        hinge = tf.maximum(1.0 - d, 0.0)
        return tf.reduce_mean(pull * tf.square(d) + push * (tf.square(hinge) if squared else hinge))

    return loss


def _siamese() -> keras.Model:
    keras.utils.set_random_seed(6)
    embed = keras.Sequential(
        [keras.Input((DIM,)), keras.layers.Dense(32, "relu"), keras.layers.Dense(8)]
    )
    a, b = keras.Input((DIM,)), keras.Input((DIM,))
    distance = keras.layers.Lambda(
        lambda t: tf.sqrt(tf.reduce_sum(tf.square(t[0] - t[1]), axis=1, keepdims=True) + 1e-9)
    )([embed(a), embed(b)])
    return keras.Model([a, b], distance)


def _inverted(findings) -> list:
    return [f for f in findings if f.code == "contrastive-labels-inverted"]


@pytest.mark.parametrize(
    "convention, labels, squared, found",
    [
        ("paper", "1 = similar", True, True),
        ("paper", "1 = similar", False, True),
        ("keras", "1 = similar", True, False),
        ("paper", "0 = similar", True, False),
        ("paper", "random", True, False),  # (no pair closer than another: nothing to tell)
    ],
)
def test_pairs_a_contrastive_loss_pulls_that_start_farther_are_found_under_fit(
    convention, labels, squared, found
):
    y = {"1 = similar": SIMILAR_IS_1, "0 = similar": 1 - SIMILAR_IS_1}.get(labels)
    y = RNG.integers(0, 2, size=(PAIRS, 1)).astype("float32") if y is None else y
    model = _siamese()
    model.compile(keras.optimizers.Adam(1e-3), loss=_loss(convention, squared))
    callback = gradguard.GuardCallback()
    model.fit([XA, XB], y, batch_size=64, epochs=1, verbose=0, callbacks=[callback])
    inverted = _inverted(callback.report().findings)
    assert bool(inverted) == found, inverted
    if found:
        details = inverted[0].details
        assert details["pulled_distance"] > contrastive.FARTHER * details["pushed_distance"]
        assert "1 = similar" in inverted[0].message


def test_a_guarded_loop_with_the_papers_loss_on_keras_labels_is_found():
    model, optimizer = _siamese(), keras.optimizers.Adam(1e-3)
    loss_fn = _loss("paper")

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(a, b, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model([a, b], training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(0, PAIRS, 64):
        step(XA[i : i + 64], XB[i : i + 64], SIMILAR_IS_1[i : i + 64])
    assert _inverted(step.report().findings)
