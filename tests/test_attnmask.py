"""An attention mask that keeps only the padding (`attnmask`, `attention-mask-inverted`): the
TensorFlow tutorial's padding mask passed to Keras' MultiHeadAttention, or a Keras keep-mask
added the tutorial's way, are found (in a traced graph, under fit, and by TrainStep); each
convention used its own way, a mask combined with a causal one, and masks built from weights
stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import findings_through

from gradguard import attnmask

T = 8


def _scores(tokens):
    """Dot products of the tokens' embeddings: (batch, T, T)."""
    embedded = tf.gather(tf.random.stateless_normal((12, 4), seed=(1, 2)), tokens)
    return tf.einsum("btd,bsd->bts", embedded, embedded)


def _causal():
    return tf.linalg.band_part(tf.ones((T, T)), -1, 0) > 0


# How a step masks attention scores by its tokens (0 = padding), and whether that keeps only
# the padding.
MASKED = {
    "where(token == 0)": (lambda s, x: tf.where(tf.equal(x, 0)[:, None, :], s, -1e9), True),
    "where(token != 0)": (lambda s, x: tf.where(tf.not_equal(x, 0)[:, None, :], s, -1e9), False),
    "tutorial: + (token == 0) * -1e9": (
        lambda s, x: s + tf.cast(tf.equal(x, 0), tf.float32)[:, None, :] * -1e9,
        False,
    ),
    "keep-mask added: + (token != 0) * -1e9": (
        lambda s, x: s + tf.cast(tf.not_equal(x, 0), tf.float32)[:, None, :] * -1e9,
        True,
    ),
    "+ (1 - (token != 0)) * -1e9": (
        lambda s, x: s + (1.0 - tf.cast(tf.not_equal(x, 0), tf.float32))[:, None, :] * -1e9,
        False,
    ),
    "and with a causal mask": (
        lambda s, x: tf.where(
            tf.logical_and(
                tf.equal(x, 0)[:, None, :], tf.linalg.band_part(tf.ones((T, T)), -1, 0) > 0
            ),
            s,
            -1e9,
        ),
        True,
    ),
}


@pytest.mark.parametrize("masked", list(MASKED))
def test_a_softmax_masked_to_keep_only_the_padding_is_found(masked):
    mask_scores, found = MASKED[masked]
    graph = tf.function(lambda x: tf.nn.softmax(mask_scores(_scores(x), x))).get_concrete_function(
        tf.TensorSpec((None, T), tf.int32)
    )
    finding = attnmask.graph_attention_keeps_padding(graph.graph.get_operations(), step=0)
    assert (finding is not None) == found, finding


def test_an_input_that_is_a_padding_mask_kept_where_it_is_0_is_right():
    graph = tf.function(
        lambda x, padding: tf.nn.softmax(
            tf.where(tf.equal(padding, 0)[:, None, :], _scores(x), -1e9)
        )
    ).get_concrete_function(tf.TensorSpec((None, T), tf.int32), tf.TensorSpec((None, T), tf.int32))
    assert attnmask.graph_attention_keeps_padding(graph.graph.get_operations(), step=0) is None


@pytest.mark.parametrize("restricted", ["to segment 0's tokens", "to segment 0"])
def test_attention_restricted_to_a_segment_is_not_padding_kept(restricted):
    # A table of 2 segments is no vocabulary; the mask with the tokens' factor holds 3.
    rows = 3 if restricted == "to segment 0's tokens" else 2

    def attend(x, segments):  # BERT-style: token and segment embeddings added
        types = tf.gather(tf.random.stateless_normal((rows, 4), seed=(3, 4)), segments)
        embedded = tf.gather(tf.random.stateless_normal((12, 4), seed=(1, 2)), x) + types
        scores = tf.einsum("btd,bsd->bts", embedded, embedded)
        keep = tf.equal(segments, 0)
        if restricted == "to segment 0's tokens":
            keep = tf.logical_and(keep, tf.not_equal(x, 0))
        return tf.nn.softmax(tf.where(keep[:, None, :], scores, -1e9))

    spec = tf.TensorSpec((None, T), tf.int32)
    graph = tf.function(attend).get_concrete_function(spec, spec)
    assert attnmask.graph_attention_keeps_padding(graph.graph.get_operations(), step=0) is None


def test_a_mask_built_from_weights_is_not_the_data():
    weights = tf.Variable(tf.zeros((T,), tf.int32))
    graph = tf.function(
        lambda x: tf.nn.softmax(tf.where(tf.equal(weights, 0)[None, None, :], _scores(x), -1e9))
    ).get_concrete_function(tf.TensorSpec((None, T), tf.int32))
    assert attnmask.graph_attention_keeps_padding(graph.graph.get_operations(), step=0) is None


class Attending(keras.Model):
    """Tokens attending to each other through Keras' MultiHeadAttention, under a padding mask
    made the tutorial's way (1 at the padding: inverted for Keras) or Keras' way."""

    def __init__(self, tutorial_mask: bool):
        super().__init__()
        self.tutorial_mask = tutorial_mask
        self.embed = keras.layers.Embedding(12, 8)
        self.attend = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
        self.out = keras.layers.Dense(1)

    def call(self, tokens):
        h = self.embed(tokens)
        compare = tf.math.equal if self.tutorial_mask else tf.math.not_equal
        mask = tf.cast(compare(tokens, 0), tf.float32)[:, tf.newaxis, :]
        return self.out(self.attend(h, h, attention_mask=mask)[:, 0])


def _tokens():
    rng = np.random.default_rng(9)
    lengths = rng.integers(3, T + 1, size=96)
    x = np.where(np.arange(T) < lengths[:, None], rng.integers(1, 12, size=(96, T)), 0)
    return x.astype("int32"), (x[:, 1:3].sum(1) > 11).astype("float32")


@pytest.mark.parametrize("entry", ["run", "train_step"])
@pytest.mark.parametrize("tutorial_mask", [True, False], ids=["tutorial-mask", "keras-mask"])
def test_a_tutorial_padding_mask_given_to_keras_attention_is_found(entry, tutorial_mask):
    x, y = _tokens()
    keras.utils.set_random_seed(9)
    model = Attending(tutorial_mask)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    findings = findings_through(entry, model, loss, x, y)
    found = [f for f in findings if f.code == "attention-mask-inverted"]
    assert bool(found) == tutorial_mask, findings
    if found:
        assert "tf.math.not_equal(tokens, 0)" in found[0].message
