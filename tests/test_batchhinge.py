"""`hinge-on-batch-total`: a margin's hinge taken of sums over the whole batch, not per example.

Judged from real traced losses (every judge of `lossgraph.graph_findings`, as the guard reads
them); the FaceNet triplet loss without ``axis=-1`` trained under `gradguard run` in the corpus.
"""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from gradguard import lossgraph

ALPHA = 0.2


def _triplet(axis, reduce=tf.reduce_sum, hinge=lambda v: tf.maximum(v, 0.0)):
    def loss(a, p, n):
        positive = reduce(tf.square(a - p), axis=axis)
        negative = reduce(tf.square(a - n), axis=axis)
        return tf.reduce_sum(hinge(positive - negative + ALPHA))

    return loss


def _budget(a, p, n):  # one batch average against a constant: a constraint on the batch
    return tf.reduce_mean(tf.square(a - p)) + tf.nn.relu(tf.reduce_mean(tf.abs(a)) - 0.1)


def _free_bits(a, p, n):  # a floor other than 0 on a batch average
    return tf.maximum(tf.reduce_mean(tf.square(a - p)) - tf.reduce_mean(tf.square(a - n)), 0.5)


def _precision_floor(a, p, n):  # a ratio of two totals held above 0.9: a rate, not a margin
    probability = tf.sigmoid(a[:, :1])
    precision = tf.reduce_sum(probability * tf.sigmoid(p[:, :1])) / tf.reduce_sum(probability)
    return tf.reduce_mean(tf.square(a - p)) + tf.nn.relu(0.9 - precision)


def _one_triple(a, p, n):  # TransE on one triple at a time: vectors of rank 1, summed whole
    return tf.maximum(
        tf.reduce_sum(tf.square(a[0] - p[0])) - tf.reduce_sum(tf.square(a[0] - n[0])) + 1.0, 0.0
    )


@pytest.mark.parametrize(
    "loss_of, found",
    [
        (_triplet(None), True),  # the FaceNet assignment's
        (_triplet(None, tf.reduce_mean), True),
        (_triplet(None, hinge=tf.nn.relu), True),
        (_triplet(-1), False),  # per triplet
        (_triplet(-1, tf.reduce_mean), False),
        (_budget, False),
        (_free_bits, False),
        (_precision_floor, False),
        (_one_triple, False),
    ],
    ids=[
        "sum",
        "mean",
        "relu",
        "per-triplet",
        "per-triplet-mean",
        "budget",
        "free-bits",
        "precision-floor",
        "one-triple",
    ],
)
def test_a_hinge_of_batch_totals_is_found(loss_of, found):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    read = []

    @tf.function
    def trace(a, p, n):
        loss = loss_of(model(a), model(p), model(n))
        read.append(lossgraph.graph_findings(loss, step=0, variables=model.trainable_variables))
        return loss

    spec = tf.TensorSpec([None, 6])
    trace.get_concrete_function(spec, spec, spec)
    codes = [f.code for f in read[0]]
    assert codes == (["hinge-on-batch-total"] if found else []), [str(f) for f in read[0]]
