"""Next-token labels, and a model that sees the tokens ahead (`future-tokens-visible`).

A language model's labels are its input shifted one step; self-attention without a causal
mask or a bidirectional RNN lets each position read its own label. Found from `TrainStep`'s
first batch and from `fit`'s arrays under ``gradguard run``, by calling the model twice; the
causal twins, a masked language model, tags and a seq2seq model whose encoder reads both ways
stay silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from harness import findings_through

from gradguard import lookahead

V, T, D = 11, 12, 16
_RNG = np.random.default_rng(0)
_SEQ = _RNG.integers(1, V, size=(64, T + 1)).astype("int32")
X, Y = _SEQ[:, :-1], _SEQ[:, 1:]  # next-token labels
_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _language_model(kind: str) -> keras.Model:
    """Tokens to next-token logits; `kind`: how positions see each other."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(V, D)(tokens)
    if kind in ("attention", "causal-attention"):
        a = keras.layers.MultiHeadAttention(2, D // 2)(h, h, use_causal_mask=kind != "attention")
        h = keras.layers.LayerNormalization()(h + a)
    elif kind == "bidirectional":
        h = keras.layers.Bidirectional(keras.layers.LSTM(D, return_sequences=True))(h)
    elif kind == "lstm":
        h = keras.layers.LSTM(D, return_sequences=True)(h)
    else:  # a convolution: centred, or causal
        h = keras.layers.Conv1D(D, 3, padding=kind)(h)
    return keras.Model(tokens, keras.layers.Dense(V)(h))


class _PrefixAttention(keras.layers.Layer):
    """Self-attention where query i sees key j if j <= i, or both lie in the prompt."""

    def __init__(self, prompt: int, **kwargs):
        super().__init__(**kwargs)
        self.prompt, self.attention = prompt, keras.layers.MultiHeadAttention(2, D // 2)

    def call(self, h):
        i, j = keras.ops.arange(T)[:, None], keras.ops.arange(T)[None, :]
        mask = keras.ops.logical_or(j <= i, (j < self.prompt) & (i < self.prompt))
        return self.attention(h, h, attention_mask=keras.ops.broadcast_to(mask, (1, T, T)))


def _prefix_language_model(prompt: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    tokens = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(V, D)(tokens)
    return keras.Model(tokens, keras.layers.Dense(V)(h + _PrefixAttention(prompt)(h)))


def test_a_prefix_language_model_is_silent():
    """Its prompt positions see each other; none sees the continuation (hunt22 h07)."""
    assert not lookahead.findings(_prefix_language_model(T - 4), X, Y, step=0)
    assert lookahead.findings(_prefix_language_model(T), X, Y, step=0)  # all prompt: sees all


def test_post_padded_rows_change_their_last_real_token():
    padded = np.where(np.arange(T) < _RNG.integers(T // 2, T, (len(X), 1)), X, 0)
    labels = np.where(padded[:, 1:] > 0, Y[:, :-1], 0)
    y = np.concatenate([labels, np.zeros((len(X), 1), "int32")], axis=1)
    assert lookahead.findings(_language_model("attention"), padded, y, step=0)
    assert not lookahead.findings(_language_model("causal-attention"), padded, y, step=0)


def _codes(found) -> set[str]:
    return {f.code for f in found}


@pytest.mark.parametrize(
    "kind, leaks",
    [
        ("attention", True),
        ("bidirectional", True),
        ("same", True),
        ("causal-attention", False),
        ("lstm", False),
        ("causal", False),
    ],
)
def test_a_next_token_model_that_sees_ahead_is_found(kind, leaks):
    model = _language_model(kind)
    model.build((None, T))
    found = lookahead.findings(model, X, Y, step=0)
    assert bool(found) == leaks, found
    if leaks:
        assert found[0].details == {"input": "x"}
        assert "use_causal_mask=True" in found[0].message


@pytest.mark.parametrize("entry", ["train_step", "run"])
@pytest.mark.parametrize("kind", ["attention", "causal-attention"])
def test_through_train_step_and_run(entry, kind):
    found = findings_through(entry, _language_model(kind), _CE, X, Y)
    assert ("future-tokens-visible" in _codes(found)) == (kind == "attention"), found


def test_labels_that_are_not_the_next_tokens_are_silent():
    model = _language_model("attention")
    masked = np.where(_RNG.random(X.shape) < 0.15, 0, X)  # a masked language model's input
    assert not lookahead.findings(model, masked, X, step=0)
    assert not lookahead.findings(model, X, (X > 5).astype("int32"), step=0)  # tags


def _seq2seq(decoder: str) -> keras.Model:
    """A bidirectional encoder, and a decoder fed the target shifted right."""
    keras.utils.set_random_seed(0)
    source = keras.Input((T,), dtype="int32", name="source")
    target = keras.Input((T,), dtype="int32", name="target")
    encoded = keras.layers.Bidirectional(keras.layers.LSTM(D, return_sequences=True))(
        keras.layers.Embedding(V, D)(source)
    )
    h = keras.layers.Embedding(V, 2 * D)(target)
    h = h + keras.layers.MultiHeadAttention(2, D)(h, h, use_causal_mask=decoder == "causal")
    h = h + keras.layers.MultiHeadAttention(2, D)(h, encoded)
    return keras.Model([source, target], keras.layers.Dense(V)(h))


@pytest.mark.parametrize("as_dict", [False, True], ids=["list", "dict"])
@pytest.mark.parametrize("decoder", ["causal", "sees-ahead"])
def test_a_seq2seq_decoder_is_judged_alone(decoder, as_dict):
    model = _seq2seq(decoder)
    x = {"source": X[:, ::-1], "target": X} if as_dict else [X[:, ::-1], X]
    found = lookahead.findings(model, x, Y, step=0)
    assert bool(found) == (decoder == "sees-ahead"), found
    if found:
        assert found[0].details["input"] in ("x['target']", "x[1] (input layer 'target')")
