"""The loss reads a stack of copies of one computation (`repeatedcolumns`, `repeated-columns`).

Found from the traced graph of a hand-written step: ordinal targets whose every column uses one
threshold, identical heads stacked, two "views" of a batch with no randomness between them.
Silent: one threshold per column, a tensor repeated as itself, random views, dropout, integer
index pairs, zeros of the labels' shape.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import repeatedcolumns
from gradguard.diagnose import ancestors

FEATURES, RANKS = 6, 4
THRESHOLDS = tf.constant([0, 1, 2])


def _net(outputs: int = RANKS - 1, dropout: float = 0.0):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(outputs),
        ]
    )


def _bce(labels, logits):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))


def _ordinal(net, x, y, index_used):
    columns = [
        tf.cast(y > THRESHOLDS[i if index_used else 1], tf.float32) for i in range(RANKS - 1)
    ]
    return _bce(tf.stack(columns, axis=1), net(x))


def _ordinal_one_threshold(net, x, y):
    return _ordinal(net, x, y, index_used=False)


def _ordinal_per_threshold(net, x, y):
    return _ordinal(net, x, y, index_used=True)


def _heads_one_layer(net, x, y):  # three "heads" that are one layer, called three times
    head = net.layers[-1]
    hidden = net.layers[0](x)
    logits = tf.concat([head(hidden) for _ in range(RANKS - 1)], axis=1)[:, : RANKS - 1]
    return _bce(tf.one_hot(y, RANKS - 1), logits)


def _views_without_noise(net, x, y):  # a consistency loss between two identical "views"
    views = tf.concat([tf.clip_by_value(x * 1.1, -2.0, 2.0) for _ in range(2)], axis=0)
    out = net(views)
    return tf.reduce_mean(tf.square(out[: tf.shape(x)[0]] - out[tf.shape(x)[0] :]))


def _views_with_noise(net, x, y):
    views = tf.concat([x + tf.random.normal(tf.shape(x), stddev=0.1) for _ in range(2)], axis=0)
    out = net(views)
    return tf.reduce_mean(tf.square(out[: tf.shape(x)[0]] - out[tf.shape(x)[0] :]))


def _label_repeated_as_itself(net, x, y):  # one target for every output, on purpose
    target = tf.cast(y > 1, tf.float32)
    return _bce(tf.stack([target] * (RANKS - 1), axis=1), net(x))


def _diagonal_indices(net, x, y):  # integer index pairs: a diagonal, not values
    scores = tf.matmul(net(x), net(x), transpose_b=True)
    n = tf.shape(x)[0]
    diagonal = tf.gather_nd(scores, tf.stack([tf.range(n), tf.range(n)], axis=1))
    return -tf.reduce_mean(diagonal)


def _zeros_stacked(net, x, y):  # constants of the labels' shape
    labels = tf.cast(y, tf.float32)
    zeros = tf.stack([tf.zeros_like(labels), tf.zeros_like(labels)], axis=1)
    return _bce(tf.concat([zeros, labels[:, None]], axis=1), net(x))


@pytest.mark.parametrize(
    "loss_of, found",
    [
        (_ordinal_one_threshold, True),
        (_heads_one_layer, True),
        (_views_without_noise, True),
        (_ordinal_per_threshold, False),
        (_views_with_noise, False),
        (_label_repeated_as_itself, False),
        (_diagonal_indices, False),
        (_zeros_stacked, False),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else str(v),
)
def test_a_stack_of_copies_of_one_computation_is_found(loss_of, found):
    net, read = _net(), []

    @tf.function
    def trace(x, y):
        loss = loss_of(net, x, y)
        read.append(repeatedcolumns.graph_repeated_columns(ancestors(loss), 0))
        return loss

    trace.get_concrete_function(tf.TensorSpec([None, FEATURES]), tf.TensorSpec([None], tf.int32))
    assert (read[0] is not None) == found, read
    if found:
        assert read[0].details["copies"] >= 2


def test_two_passes_through_dropout_stacked_are_not_copies():
    net, read = _net(dropout=0.5), []

    @tf.function
    def trace(x):
        passes = tf.stack([net(x, training=True), net(x, training=True)], axis=0)
        loss = tf.reduce_mean(tf.math.reduce_variance(passes, axis=0))
        read.append(repeatedcolumns.graph_repeated_columns(ancestors(loss), 0))
        return loss

    trace.get_concrete_function(tf.TensorSpec([None, FEATURES]))
    assert read == [None]


@pytest.mark.parametrize("index_used", [False, True])
def test_ordinal_targets_built_with_one_threshold_are_found_by_the_guard(index_used):
    net, optimizer = _net(), keras.optimizers.Adam(1e-2)
    rng = np.random.default_rng(0)

    @gradguard.guard(net, optimizer)
    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = _ordinal(net, x, y, index_used)
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return loss

    for _ in range(3):
        x = rng.normal(size=(32, FEATURES)).astype("float32")
        step(x, np.clip(np.round(x[:, 0] + 1.5), 0, RANKS - 1).astype("int32"))
    found = [f for f in step.report().findings if f.code == "repeated-columns"]
    assert bool(found) != index_used, found
    if found:
        assert "3 copies" in found[0].message and "Greater" in found[0].message


@pytest.mark.parametrize("entry", ["fit", "train_step"])
@pytest.mark.parametrize("index_used", [False, True])
def test_a_custom_ordinal_loss_with_one_threshold_is_found(index_used, entry):
    def ordinal_loss(y_true, y_pred):
        y = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        columns = [tf.cast(y > (i if index_used else 1), tf.float32) for i in range(RANKS - 1)]
        return _bce(tf.stack(columns, axis=1), y_pred)

    net, optimizer = _net(), keras.optimizers.Adam(1e-2)
    x = np.random.default_rng(0).normal(size=(64, FEATURES)).astype("float32")
    y = np.clip(np.round(x[:, 0] + 1.5), 0, RANKS - 1).astype("float32")
    if entry == "fit":
        net.compile(optimizer, ordinal_loss)
        guarded = gradguard.GuardCallback()
        net.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[guarded])
    else:
        guarded = gradguard.TrainStep(net, optimizer, ordinal_loss)
        for start in (0, 32):
            guarded(x[start : start + 32], y[start : start + 32])
    found = [f for f in guarded.report().findings if f.code == "repeated-columns"]
    assert bool(found) != index_used, guarded.report()
