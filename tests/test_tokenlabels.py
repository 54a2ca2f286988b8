"""Token labels against the model's token inputs (`tokenlabels`), from `TrainStep`'s first batch
and from `fit`'s arrays (or a data set's sliced ones) under ``gradguard run``: labels that are
one of the inputs position by position (`labels-in-inputs`: teacher forcing without the shift,
ids or one-hot rows; the shifted decoder input, a copy task, an autoencoder, masks and masked
language modelling silent), and tags padded on the other side from their tokens
(`padding-misaligned`; padded alike, a padding tag other than 0, 0 as a real token, and an
encoder-decoder silent)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import findings_through

import gradguard
from gradguard import batch, tokenlabels
from gradguard.guarding import Guard
from gradguard.options import Options

V, T = 13, 8  # tokens 3..12; 0 pads, 1 starts


def _sequences(n: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, target, target shifted right after a start token), padded with 0 at the end."""
    rng = np.random.default_rng(seed)
    src, tgt, shifted = (np.zeros((n, T), "int32") for _ in range(3))
    for i in range(n):
        length = rng.integers(3, T + 1)
        tokens = rng.integers(3, V, length)
        src[i, :length], tgt[i, :length] = tokens, tokens[::-1]
        shifted[i, 0], shifted[i, 1:length] = 1, tokens[::-1][:-1]
    return src, tgt, shifted


SRC, TGT, SHIFTED = _sequences()


def _one_hot(tokens: np.ndarray) -> np.ndarray:
    """Token ids as one-hot rows, as a character model is fed; padding (0) all zeros."""
    return np.eye(V, dtype="float32")[tokens] * (tokens > 0)[..., None]


def _masked(tokens: np.ndarray, share: float) -> np.ndarray:
    corrupted = tokens.copy()
    hidden = (np.random.default_rng(1).random(tokens.shape) < share) & (tokens > 0)
    corrupted[hidden] = 2  # [MASK]
    return corrupted


@pytest.mark.parametrize(
    "x, y, named",
    [
        ([SRC, TGT], TGT, "x[1]"),  # decoder input = target: the bug
        ({"enc": SRC, "dec": TGT}, TGT, "x['dec']"),
        ([SRC, TGT], TGT.astype("float32")[..., None], "x[1]"),  # float ids, a trailing axis
        ([SRC, SHIFTED], TGT, None),  # teacher forcing with the shift
        ([TGT, SHIFTED], TGT, None),  # a copy task: labels = the encoder's input
        (TGT, TGT, None),  # an autoencoder: one input
        ([TGT, np.arange(len(TGT))], TGT, None),  # a condition that is no sequence
        ([TGT, (TGT > 0).astype("int32")], (TGT > 6).astype("int32"), None),  # mask, tags
        ([_masked(TGT, 0.15), np.zeros_like(TGT)], TGT, None),  # masked language modelling
        ([TGT, (TGT > 0).astype("int32")], TGT, None),  # masked in the model, a padding mask
        ([TGT, np.tile(np.arange(T), (len(TGT), 1))], TGT, None),  # position ids
        ([SRC[:4], TGT[:4]], TGT[:4], None),  # too few positions to judge
        ([_one_hot(SRC), _one_hot(TGT)], _one_hot(TGT), "x[1]"),  # one-hot (hunt34 b08)
        ([_one_hot(SRC), _one_hot(SHIFTED)], _one_hot(TGT), None),
        (_one_hot(TGT), _one_hot(TGT), None),  # a one-hot autoencoder
    ],
    ids=[
        "not-shifted",
        "dict",
        "float-labels",
        "shifted",
        "copy-task",
        "autoencoder",
        "condition",
        "mask-and-tags",
        "masked-lm",
        "masked-in-model",
        "position-ids",
        "few-positions",
        "one-hot-not-shifted",
        "one-hot-shifted",
        "one-hot-autoencoder",
    ],
)
def test_labels_equal_to_an_input_are_found(x, y, named):
    (found,) = [
        f for f in tokenlabels.findings(None, x, y, step=3) if f.code == "labels-in-inputs"
    ] or [None]
    assert (found is not None) == (named is not None), found
    if found is not None:
        assert found.code == "labels-in-inputs" and found.step == 3
        assert f"input {named} itself" in found.message, found.message
        assert "[<start>] + target[:-1]" in found.message
        assert found.details["share"] == 1.0


def _seq2seq() -> keras.Model:
    """Encoder and decoder tokens, the decoder's position by position (as a causal decoder's)."""
    keras.utils.set_random_seed(5)
    enc, dec = keras.Input((T,), dtype="int32"), keras.Input((T,), dtype="int32", name="dec")
    summary = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(V, 8)(enc))
    steps = keras.layers.Embedding(V, 8)(dec) + keras.ops.expand_dims(summary, 1)
    return keras.Model([enc, dec], keras.layers.Dense(V)(steps))


@pytest.mark.parametrize("shifted", [False, True], ids=["not-shifted", "shifted"])
def test_train_step_finds_the_unshifted_decoder_input_at_its_first_batch(shifted):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    step = gradguard.TrainStep(_seq2seq(), keras.optimizers.Adam(1e-2), loss)
    decoder = SHIFTED if shifted else TGT
    for i in range(0, 64, 16):
        step([SRC[i : i + 16], decoder[i : i + 16]], TGT[i : i + 16])
    found = [f for f in step.report().findings if f.code == "labels-in-inputs"]
    assert bool(found) != shifted, found
    if found:
        assert "input x[1] (input layer 'dec') itself" in found[0].message


@pytest.mark.parametrize(
    "data, found",
    [
        ("arrays", True),
        ("shifted", False),
        ("dataset", True),  # arrays sliced, shuffled and batched: read as fit's arrays
        ("shifted-dataset", False),
        ("mapped-dataset", False),  # a map makes the pairs: its rows are not read
        ("own-train-step", False),  # an override may shift the labels itself
    ],
)
def test_run_reads_fits_arrays_as_it_starts(data, found):
    model = _seq2seq()
    if data == "own-train-step":
        model = OwnStep(model.inputs, model.outputs)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    guard = Guard(options=Options.create(), raise_errors=False)
    decoder = SHIFTED if data.startswith("shifted") else TGT
    with guard.instrument_process():
        if data.endswith("dataset"):
            batches = tf.data.Dataset.from_tensor_slices(((SRC, decoder), TGT))
            if data == "mapped-dataset":
                batches = tf.data.Dataset.from_tensor_slices((SRC, TGT))
                batches = batches.map(lambda src, tgt: ((src, tgt), tgt))
            model.fit(batches.shuffle(128).batch(32).prefetch(1), epochs=1, verbose=0)
        else:
            model.fit([SRC, decoder], TGT, batch_size=32, epochs=1, verbose=0)
    codes = [f.code for f in guard.read(final=True).findings]
    assert ("labels-in-inputs" in codes) == found, codes


def test_a_data_sets_arrays_are_read_without_drawing_from_it():
    """`batch.sliced` reads the sliced arrays, not the data set: its shuffle is not moved on."""

    def first_epoch(peek: bool) -> list[int]:
        tf.random.set_seed(3)
        rows = tf.data.Dataset.from_tensor_slices((np.arange(64), np.arange(64) * 2))
        batches = rows.shuffle(64).batch(8).repeat(2).prefetch(1)
        if peek:
            x, y, weights = batch.sliced(batches, rows=5)
            assert x.numpy().tolist() == [0, 1, 2, 3, 4] and y.numpy().tolist()[-1] == 8
            assert weights is None
        return [int(v) for x, _ in batches.take(8) for v in x]

    assert first_epoch(peek=True) == first_epoch(peek=False)
    mapped = tf.data.Dataset.from_tensor_slices(np.arange(4)).map(lambda v: (v, v)).batch(2)
    assert batch.sliced(mapped) is None


class OwnStep(keras.Model):
    """Keras' train step behind an override (which could shift or pad the labels)."""

    def train_step(self, data):
        return super().train_step(data)


def _tagged(n: int = 200, pad_tags: str = "pre", pad_tag: int = 0):
    """Sentences of 4 to T tokens (ids 1..V-1) and a tag (1..4) per token, padded with
    `pad_sequences`: the tokens at their start (its default), the tags as `pad_tags` says."""
    rng = np.random.default_rng(2)
    tokens = [rng.integers(1, V, rng.integers(4, T + 1)) for _ in range(n)]
    tags = [1 + (t % 4) for t in tokens]
    x = keras.utils.pad_sequences(tokens, maxlen=T)
    y = keras.utils.pad_sequences(tags, maxlen=T, padding=pad_tags, value=pad_tag)
    return x, y


def _tagger(encoder_decoder: bool = False) -> keras.Model:
    keras.utils.set_random_seed(6)
    tokens = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(V, 8)(tokens)
    if encoder_decoder:  # the input summarized, then unrolled: its positions are not kept
        h = keras.layers.RepeatVector(T)(keras.layers.GRU(8)(h))
        h = keras.layers.GRU(8, return_sequences=True)(h)
    return keras.Model(tokens, keras.layers.Dense(5)(h))


@pytest.mark.parametrize(
    "case",
    [
        "post-tags",
        "alike",
        "pad-tag-9",
        "zero-is-a-token",
        "start-token-0",
        "encoder-decoder",
        "next-tokens",
    ],
)
def test_tags_padded_elsewhere_than_their_tokens_are_found(case):
    x, y = _tagged(pad_tags="post" if case in ("post-tags", "encoder-decoder") else "pre")
    if case == "next-tokens":  # a language model on pre-padded rows: x = seq[:-1], y = seq[1:]
        sequences = np.pad(x, ((0, 0), (0, 1)))
        sequences[:, -1] = np.where(x[:, -1] > 0, 1, 0)  # an end token
        x, y = sequences[:, :-1], sequences[:, 1:]
    if case == "pad-tag-9":
        x, y = _tagged(pad_tag=9)
    if case == "zero-is-a-token":  # 0 inside sentences too: not padding
        x = np.where(np.random.default_rng(3).random(x.shape) < 0.2, 0, x + 1)
        y = np.where(x == 0, 3, y)
    if case == "start-token-0":  # every row starts with token 0, tagged as its word's tag
        x, y = np.pad(x[:, 1:] + 1, ((0, 0), (1, 0))), np.roll(y, 1, axis=1)
    model = _tagger(encoder_decoder=case == "encoder-decoder")
    found = [f for f in tokenlabels.findings(model, x, y, step=2) if f.code == "padding-misaligned"]
    assert bool(found) == (case == "post-tags"), found
    if found:
        assert "at the start of its rows" in found[0].message, found[0].message
        assert "pad the inputs and the labels the same way" in found[0].message
        assert found[0].details["other"] > 0.5


@pytest.mark.parametrize("entry", ["train_step", "run"])
@pytest.mark.parametrize("pad_tags", ["post", "pre"])
def test_tags_padded_elsewhere_are_found_at_the_first_batch_or_fits_start(entry, pad_tags):
    x, y = _tagged(pad_tags=pad_tags)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    findings = findings_through(entry, _tagger(), loss, x, y)
    codes = [f.code for f in findings]
    assert ("padding-misaligned" in codes) == (pad_tags == "post"), codes


@pytest.mark.parametrize("skip", [False, True], ids=["bottleneck", "tokens-also-by-position"])
def test_an_input_reaching_the_output_only_through_a_summary_is_not_copied_from(skip):
    """A bottleneck autoencoder with segment ids beside its tokens: the labels are its token
    input by design, since the tokens reach the output only through the encoder's last state.
    The same tokens also fed to the decoder position by position can be copied: found."""
    keras.utils.set_random_seed(7)
    tokens, segments = keras.Input((T,), dtype="int32"), keras.Input((T,), dtype="int32")
    summary = keras.layers.GRU(8)(keras.layers.Embedding(V, 8)(tokens))
    steps = [keras.layers.RepeatVector(T)(summary), keras.layers.Embedding(3, 4)(segments)]
    if skip:
        steps.append(keras.layers.Embedding(V, 4)(tokens))
    decoded = keras.layers.GRU(8, return_sequences=True)(keras.layers.Concatenate()(steps))
    model = keras.Model([tokens, segments], keras.layers.Dense(V)(decoded))
    segment_ids = np.where(TGT > 0, 1 + (np.arange(T) >= T // 2), 0).astype("int32")
    found = [f for f in tokenlabels.findings(model, [TGT, segment_ids], TGT, step=1)]
    assert [f.code for f in found] == (["labels-in-inputs"] if skip else []), found
