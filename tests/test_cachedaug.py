"""Random augmentation cached after its first epoch (`cachedaug`, `augmentation-cached`): found
for a `cache` (in memory or to a file) after a map that draws random numbers (`tf.random`, a
Generator, `tf.image.random_*`, Keras' random layers), given to a real `fit` of several epochs
under a process-wide guard; silent for the cache before the random map, for a deterministic
map, for a fixed seed, and for one epoch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import cachedaug
from gradguard.guarding import Guard
from gradguard.options import Options

CODE = "augmentation-cached"
X = np.random.default_rng(0).normal(size=(32, 4, 4, 1)).astype("float32")
Y = (X[:, 0, 0, 0] > 0).astype("int32")


def _shift():
    generator = tf.random.Generator.from_seed(1)

    def random_shift(image, label):
        return tf.roll(image, generator.uniform([2], -1, 2, dtype=tf.int32), [0, 1]), label

    return random_shift


def _flip(image, label):
    return tf.image.random_flip_left_right(image), label


def _fixed(image, label):
    return tf.image.stateless_random_flip_left_right(image, seed=(1, 2)), label


def _double(image, label):
    return image * 2.0, label


def _pipeline(kind: str, tmp_path) -> tf.data.Dataset:
    base = tf.data.Dataset.from_tensor_slices((X, Y))
    if kind == "keras layer, then cache":
        layer = keras.layers.RandomFlip("horizontal")
        return base.batch(8).map(lambda x, y: (layer(x, training=True), y)).cache()
    data = {
        "generator, then cache": lambda: base.map(_shift()).cache(),
        "tf.image, then cache to a file": lambda: base.map(_flip).cache(str(tmp_path / "c")),
        "cache, then generator": lambda: base.cache().map(_shift()),
        "deterministic, then cache": lambda: base.map(_double).cache(),
        "fixed seed, then cache": lambda: base.map(_fixed).cache(),
    }[kind]()
    return data.shuffle(32).batch(8)


FOUND = ["generator, then cache", "tf.image, then cache to a file", "keras layer, then cache"]
SILENT = ["cache, then generator", "deterministic, then cache", "fixed seed, then cache"]


@pytest.mark.parametrize("kind", FOUND + SILENT)
def test_a_random_map_before_a_cache_is_found(kind, tmp_path):
    data = _pipeline(kind, tmp_path)
    codes = [f.code for f in cachedaug.findings({"x": data, "epochs": 3}, step=0)]
    assert codes == ([CODE] if kind in FOUND else [])
    assert cachedaug.findings({"x": data, "epochs": 1}, step=0) == []  # (no epoch replayed)


@pytest.mark.parametrize("kind", ["generator, then cache", "cache, then generator"])
def test_under_a_process_wide_guard_fit_is_told(kind, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(_pipeline(kind, tmp_path), epochs=2, verbose=0)
        found = [f for f in guard.read(final=True).findings if f.code == CODE]
    assert len(found) == (kind in FOUND)
    if found:
        assert "'random_shift'" in found[0].message and "ds.cache().map" in found[0].message
