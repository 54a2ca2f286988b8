"""Inputs and labels shuffled apart, then zipped (`unpaired`, `labels-uninformative`): found in
the data set `fit` is given under run; zipping first, the same seeded order on both sides, no
shuffle, zips that are not (inputs, labels) and a model whose own train step reads the zip
stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import unpaired
from gradguard.guarding import Guard
from gradguard.options import Options

rng = np.random.default_rng(8)
X = rng.normal(size=(256, 6)).astype("float32")
Y = (X[:, 0] > 0).astype("float32")[:, None]
xs, ys = tf.data.Dataset.from_tensor_slices(X), tf.data.Dataset.from_tensor_slices(Y)


def _kept(x):
    return x[0] > -1.0  # (drops about a sixth of the examples)


def _split(pairs):
    return tf.data.Dataset.zip((pairs.map(lambda x, y: x), pairs.map(lambda x, y: y)))


# How the data set pairs its inputs and labels, and whether they are shuffled or filtered apart.
DATA = {
    "seeds 1 and 2": (lambda: tf.data.Dataset.zip((xs.shuffle(256, 1), ys.shuffle(256, 2))), True),
    "inputs alone": (lambda: tf.data.Dataset.zip((xs.shuffle(256), ys)), True),
    "both unseeded": (lambda: tf.data.Dataset.zip((xs.shuffle(256), ys.shuffle(256))), True),
    "mapped pairs": (
        lambda: tf.data.Dataset.zip((xs.shuffle(256, 1), ys.shuffle(256, 2))).map(
            lambda x, y: (2 * x, y)
        ),
        True,
    ),
    "zipped first": (lambda: tf.data.Dataset.zip((xs, ys)).shuffle(256, 1), False),
    "same seed": (lambda: tf.data.Dataset.zip((xs.shuffle(256, 3), ys.shuffle(256, 3))), False),
    "unshuffled": (lambda: tf.data.Dataset.zip((xs, ys)), False),
    "three inputs": (
        lambda: tf.data.Dataset.zip((xs.shuffle(256), xs.shuffle(256), ys)),
        False,
    ),
    "a branch of pairs": (  # an unlabeled stream beside a labeled one (semi-supervised)
        lambda: tf.data.Dataset.zip((xs.shuffle(256), tf.data.Dataset.zip((xs, ys)).shuffle(256))),
        False,
    ),
    "mapped to one": (
        lambda: tf.data.Dataset.zip((xs.shuffle(256, 1), ys.shuffle(256, 2))).map(lambda x, y: x),
        False,
    ),
    "inputs filtered": (lambda: tf.data.Dataset.zip((xs.filter(_kept), ys)), True),
    "filtered, then shuffled": (
        lambda: tf.data.Dataset.zip((xs.filter(_kept), ys)).shuffle(256, 1),
        True,
    ),
    "pairs filtered": (lambda: tf.data.Dataset.zip((xs, ys)).filter(lambda x, y: _kept(x)), False),
    "shuffled apart, then filtered": (
        lambda: tf.data.Dataset.zip((xs.shuffle(256, 1), ys.shuffle(256, 2))).filter(
            lambda x, y: _kept(x)
        ),
        True,
    ),
    "labels a step ahead": (lambda: tf.data.Dataset.zip((xs, ys.skip(1))), False),  # a forecast
    "both filtered by index": (  # (hunt11: the same examples kept from both)
        lambda: tf.data.Dataset.zip(
            tuple(
                d.enumerate().filter(lambda i, v: i % 5 != 0).map(lambda i, v: v) for d in (xs, ys)
            )
        ),
        False,
    ),
    "filtered, then split": (  # (hunt11: one filtered data set, then inputs and labels)
        lambda: _split(tf.data.Dataset.zip((xs, ys)).filter(lambda x, y: _kept(x))),
        False,
    ),
}


@pytest.mark.parametrize("data", list(DATA))
def test_inputs_and_labels_shuffled_apart_are_found(data):
    make, found = DATA[data]
    finding = unpaired.finding(make().batch(32).prefetch(1), step=0)
    assert (finding is not None) == found, finding
    if finding is not None:
        assert finding.code == "labels-uninformative"
        assert "Zip them first, then" in finding.message
    if data == "seeds 1 and 2":
        assert "the inputs' shuffle(256), the labels' shuffle(256), each its own" in finding.message


def test_arrays_are_no_data_set():
    assert unpaired.finding(X, step=0) is None


class TwoStreams(keras.Sequential):
    """A model whose own train step reads a zip of two streams as it likes (a CycleGAN's two
    unpaired image sets): here, the first stream only."""

    def train_step(self, data):
        x, _ = data
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(self(x, training=True) ** 2)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


@pytest.mark.parametrize("data", ["seeds 1 and 2", "zipped first", "an override's two streams"])
def test_fit_under_run_reads_how_its_data_set_pairs(data):
    keras.utils.set_random_seed(8)
    layers = [keras.Input((6,)), keras.layers.Dense(1)]
    model = TwoStreams(layers) if data.startswith("an override") else keras.Sequential(layers)
    data = "seeds 1 and 2" if data.startswith("an override") else data
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True))
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(DATA[data][0]().batch(32), epochs=1, verbose=0)
        codes = [f.code for f in guard.read(final=True).findings]
    found = DATA[data][1] and not isinstance(model, TwoStreams)
    assert ("labels-uninformative" in codes) == found, codes
