"""Softmax weights over an axis of size 1 (`softmaxone`, `softmax-over-one`): attention pooling
whose softmax runs over the size-1 score axis is found under `TrainStep` and `fit` under
`gradguard run`; the softmax over the time steps, and a one-unit softmax output layer (its
loss's finding, not a product's weights), stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import findings_through

from gradguard import softmaxone

CODE = "softmax-over-one"
T = 12


class AttentionPool(keras.Model):
    """Per-step scores (batch, T, 1), softmax-weighted sum of the steps, a classifier on it."""

    def __init__(self, axis: int):
        super().__init__()
        self.axis = axis
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.score = keras.layers.Dense(1)
        self.out = keras.layers.Dense(1)

    def call(self, x):
        h = self.hidden(x)
        weights = tf.nn.softmax(self.score(h), axis=self.axis)
        return self.out(tf.reduce_sum(weights * h, axis=1))


def _sequences():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(96, T, 3)).astype("float32")
    return x, (x[:, :, 0].max(axis=1) > 1.5).astype("float32")


@pytest.mark.parametrize("entry", ["run", "train_step"])
@pytest.mark.parametrize("axis", [-1, 1], ids=["size-1 axis", "time steps"])
def test_attention_pooling_over_the_size_one_axis_is_found(entry, axis):
    x, y = _sequences()
    keras.utils.set_random_seed(4)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    findings = findings_through(entry, AttentionPool(axis), loss, x, y)
    found = [f for f in findings if f.code == CODE]
    assert bool(found) == (axis == -1), findings
    if found:
        assert f"(32, {T}, 1)" in found[0].message or f"(None, {T}, 1)" in found[0].message


def test_a_one_unit_softmax_output_weighs_nothing():
    """The loss reads it (from-logits-mismatch's case): no product's weights."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="softmax")])
    graph = tf.function(lambda x, y: tf.reduce_mean((model(x) - y) ** 2)).get_concrete_function(
        tf.TensorSpec((None, 3)), tf.TensorSpec((None, 1))
    )
    ops = graph.graph.get_operations()
    assert any(op.type == "Softmax" for op in ops)
    assert softmaxone.graph_softmax_over_one(ops, step=0) is None


def test_attention_to_a_single_key_is_right_to_weigh_it_by_1():
    """Cross-attention to one context vector: the softmax over one key, a product over it."""
    attend = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    graph = tf.function(lambda q, c: attend(q, c)).get_concrete_function(
        tf.TensorSpec((None, T, 8)), tf.TensorSpec((None, 1, 8))
    )
    ops = graph.graph.get_operations()
    assert any(op.type == "Softmax" and op.inputs[0].shape[-1] == 1 for op in ops)
    assert softmaxone.graph_softmax_over_one(ops, step=0) is None


@pytest.mark.parametrize("transposed", [True, False])
def test_pooling_by_a_matrix_product_over_the_positions_is_found(transposed):
    """weights (batch, T, 1) transposed times values (batch, T, F): a sum over the positions."""

    def pool(values):
        weights = tf.nn.softmax(tf.reduce_sum(values, -1, keepdims=True), axis=-1)
        if transposed:
            return tf.matmul(weights, values, adjoint_a=True)
        return tf.matmul(weights, values[:, :1])  # (one key: a product over the size-1 axis)

    graph = tf.function(pool).get_concrete_function(tf.TensorSpec((None, T, 8)))
    found = softmaxone.graph_softmax_over_one(graph.graph.get_operations(), step=0)
    assert (found is not None) == transposed
