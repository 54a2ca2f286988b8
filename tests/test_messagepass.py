"""Graph messages summed back at the nodes they came from (`messagepass`, `messages-to-sender`).

Found from the traced graph of a hand-written step and under `fit`: messages gathered from
``h[senders]`` and summed by ``senders`` (the same tensor, or equal constants), or scattered
there (``tf.tensor_scatter_nd_add``, ``tf.scatter_nd``). Silent: summed at
the receivers, messages that also read the receivers' rows or edge features, graph pooling
(a segment sum of the nodes themselves), and an embedding table's rows summed by their ids.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import messagepass
from gradguard.diagnose import ancestors
from gradguard.guarding import Guard
from gradguard.options import Options

NODES, FEATURES = 60, 4


def _graph():
    rng = np.random.default_rng(0)
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, NODES, size=(240, 2)) if a != b}
    pairs |= {(b, a) for a, b in pairs}
    senders, receivers = (np.array(v, "int32") for v in zip(*sorted(pairs)))
    return senders, receivers


SENDERS, RECEIVERS = _graph()
_DENSE = keras.layers.Dense(FEATURES)
_DENSE.build((None, FEATURES))
_TABLE = keras.layers.Embedding(NODES, FEATURES)
_TABLE.build((None,))


def _at_senders(h, s, r, e):
    return tf.math.unsorted_segment_sum(_DENSE(tf.gather(h, s)), s, NODES)


def _keras_segment_sum_at_senders(h, s, r, e):
    return keras.ops.segment_sum(_DENSE(tf.gather(h, s)), s, NODES)


def _scattered_at_senders(h, s, r, e):  # tf.tensor_scatter_nd_add, ids as a column
    return tf.tensor_scatter_nd_add(tf.zeros_like(h), s[:, None], _DENSE(tf.gather(h, s)))


def _scatter_nd_at_senders(h, s, r, e):
    return tf.scatter_nd(tf.expand_dims(s, -1), _DENSE(tf.gather(h, s)), tf.shape(h))


def _scattered_at_receivers(h, s, r, e):
    return tf.tensor_scatter_nd_add(tf.zeros_like(h), r[:, None], _DENSE(tf.gather(h, s)))


def _at_receivers(h, s, r, e):
    return tf.math.unsorted_segment_sum(_DENSE(tf.gather(h, s)), r, NODES)


def _both_ends_at_senders(h, s, r, e):  # the receivers' rows travel to the senders
    pair = tf.concat([tf.gather(h, s), tf.gather(h, r)], axis=1)
    return tf.math.unsorted_segment_sum(pair, s, NODES)


def _edge_features_at_senders(h, s, r, e):
    return tf.math.unsorted_segment_sum(tf.gather(h, s) * e, s, NODES)


def _attention_scored_at_receivers(h, s, r, e):  # its denominator sums receivers' own scores
    scores = tf.exp(_DENSE(tf.gather(h, r))[:, 0])
    denominator = tf.math.unsorted_segment_sum(scores, r, NODES)
    weights = scores / tf.gather(denominator, r)
    return tf.math.unsorted_segment_sum(weights[:, None] * tf.gather(h, s), r, NODES)


def _pooled(h, s, r, e):  # a segment sum of the nodes themselves: no gather
    return tf.math.unsorted_segment_sum(h, tf.range(NODES) // 10, NODES // 10)


def _table_rows_by_id(h, s, r, e):  # an embedding's rows summed by their ids
    return tf.math.unsorted_segment_sum(_TABLE(s), s, NODES)


@pytest.mark.parametrize(
    "aggregate, found",
    [
        (_at_senders, True),
        (_keras_segment_sum_at_senders, True),
        (_scattered_at_senders, True),
        (_scatter_nd_at_senders, True),
        (_scattered_at_receivers, False),
        (_at_receivers, False),
        (_both_ends_at_senders, False),
        (_edge_features_at_senders, False),
        (_attention_scored_at_receivers, False),
        (_pooled, False),
        (_table_rows_by_id, False),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else str(v),
)
@pytest.mark.parametrize("indices", ["fed", "constant"])
def test_messages_summed_by_the_indices_they_were_gathered_by_are_found(aggregate, found, indices):
    read = []

    def loss_of(h, s, r, e):
        loss = tf.reduce_mean(aggregate(h, s, r, e))
        read.append(messagepass.graph_messages_to_sender(ancestors(loss), 0))
        return loss

    h = tf.TensorSpec([NODES, FEATURES])
    e = tf.TensorSpec([len(SENDERS), 1])
    if indices == "fed":
        edges = tf.TensorSpec([len(SENDERS)], tf.int32)
        tf.function(loss_of).get_concrete_function(h, edges, edges, e)
    else:  # numpy arrays closed over: a constant at each use
        tf.function(lambda h, e: loss_of(h, SENDERS, RECEIVERS, e)).get_concrete_function(h, e)
    assert (read[0] is not None) == found, read
    if read[0] is not None:
        assert "each node gets back only its own messages" in read[0].message


class MessagePassing(keras.layers.Layer):
    def __init__(self, at_senders: bool):
        super().__init__()
        self.at_senders = at_senders
        self.message = keras.layers.Dense(8)
        self.update = keras.layers.Dense(8, activation="relu")

    def call(self, h):
        messages = self.message(tf.gather(h, SENDERS))
        to = SENDERS if self.at_senders else RECEIVERS
        aggregated = tf.math.unsorted_segment_sum(messages, to, NODES)
        return self.update(tf.concat([h, aggregated], axis=1))


@pytest.mark.parametrize("at_senders", [True, False])
def test_a_hand_written_graph_network_summing_at_the_senders_is_found(at_senders):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(NODES, FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    layer, head = MessagePassing(at_senders), keras.layers.Dense(2)
    head(layer(x))
    variables = layer.trainable_variables + head.trainable_variables
    optimizer = keras.optimizers.Adam(1e-2)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    @gradguard.guard([layer, head], optimizer)
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, head(layer(x)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    for _ in range(3):
        step()
    codes = [f.code for f in step.report().findings]
    assert ("messages-to-sender" in codes) == at_senders, codes


@pytest.mark.parametrize("at_senders", [True, False])
def test_fit_of_a_graph_network_summing_at_the_senders_is_found(at_senders):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(NODES, FEATURES)).astype("float32")
    inputs = keras.Input(batch_shape=(NODES, FEATURES))
    model = keras.Model(inputs, keras.layers.Dense(2)(MessagePassing(at_senders)(inputs)))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(
            x[None].repeat(2, 0).reshape(-1, FEATURES),
            np.zeros(2 * NODES),
            batch_size=NODES,
            verbose=0,
        )
    codes = [f.code for f in guard.read(final=True).findings]
    assert ("messages-to-sender" in codes) == at_senders, codes
