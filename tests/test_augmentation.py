"""Random augmentation that repeats every epoch (`augmentation`, `augmentation-repeated`): found
for a `cache` (in memory or to a file) after a map that draws random numbers (`tf.random`, a
Generator, `tf.image.random_*`, Keras' random layers), and for `tf.random` ops seeded by the
global seed in a map with no shuffle before it, given to a real `fit` of several epochs under a
process-wide guard; silent for the cache before a Generator's map, for a deterministic map, for
a fixed stateless seed, for a shuffle before the seeded map, for a seeded map repeated for ever
(one iterator through fit: hunt34 f06), and for one epoch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import augmentation
from gradguard.guarding import Guard
from gradguard.options import Options

CODE = "augmentation-repeated"
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


def _seeded(image, label):  # (tf.random under the global seed: restarted every epoch)
    return tf.roll(image, tf.random.uniform([2], -1, 2, dtype=tf.int32), [0, 1]), label


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
        "global seed": lambda: base.map(_seeded),
        "shuffle, then global seed": lambda: base.shuffle(32).map(_seeded),
        "generator": lambda: base.map(_shift()),
    }[kind.removesuffix(", repeated for ever")]()
    data = data.shuffle(32).batch(8)
    return data.repeat() if kind.endswith("repeated for ever") else data


FOUND = [
    "generator, then cache",
    "tf.image, then cache to a file",
    "keras layer, then cache",
    "global seed",
    "generator, then cache, repeated for ever",  # (the cache still replays the first pass)
]
SILENT = [
    "global seed, repeated for ever",  # one iterator through fit: its draws go on
    "cache, then generator",
    "deterministic, then cache",
    "fixed seed, then cache",
    "shuffle, then global seed",
    "generator",
]


@pytest.mark.parametrize("kind", FOUND + SILENT)
def test_a_random_map_every_epoch_replays_is_found(kind, tmp_path):
    tf.random.set_seed(0)  # (keras.utils.set_random_seed, as a reproducible script has it)
    data = _pipeline(kind, tmp_path)
    codes = [f.code for f in augmentation.findings({"x": data, "epochs": 3}, step=0)]
    assert codes == ([CODE] if kind in FOUND else [])
    if kind.startswith("global seed"):  # (what it rests on: a new iterator restarts the draws)
        iterator = iter(data)
        first = [next(iterator)[0].numpy() for _ in range(4)]  # (an epoch: 4 batches)
        if kind == "global seed":  # (fit's next epoch: a new iterator)
            second = [x.numpy() for x, _ in data]
        else:
            second = [next(iterator)[0].numpy() for _ in range(4)]
        examples = [sorted(e.tobytes() for e in np.concatenate(b)) for b in (first, second)]
        assert (examples[0] == examples[1]) == (kind in FOUND)  # (the shuffle after: as sets)
    assert augmentation.findings({"x": data, "epochs": 1}, step=0) == []  # (no epoch replayed)


@pytest.mark.parametrize(
    "kind", ["generator, then cache", "global seed", "generator", "global seed, repeated for ever"]
)
def test_under_a_process_wide_guard_fit_is_told(kind, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(_pipeline(kind, tmp_path), epochs=2, steps_per_epoch=4, verbose=0)
        found = [f for f in guard.read(final=True).findings if f.code == CODE]
    assert len(found) == (kind in FOUND)
    if found:
        name, fix = (
            ("random_shift", "ds.cache().map") if "cache" in kind else ("_seeded", "Generator")
        )
        assert f"'{name}'" in found[0].message and fix in found[0].message, found[0].message
