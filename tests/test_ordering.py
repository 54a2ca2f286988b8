"""Batches of one class at a time (`batches-one-class`): counted in-graph, judged on the host."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL

import gradguard
from gradguard import chance

CLASSES, FEATURES, EXAMPLES, BATCH = 5, 12, 3200, 32
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def labels_in_batches(order: str, batch: int = BATCH, seed: int = 0) -> list[np.ndarray]:
    """Class ids of `EXAMPLES` examples, batched in one of several orders."""
    rng = np.random.default_rng(seed)
    y = np.sort(rng.integers(0, CLASSES, EXAMPLES)).astype(np.int32)
    if order == "shuffled":
        y = rng.permutation(y)
    elif order.startswith("buffer-"):  # dataset.shuffle(n) over sorted data (tensorflow#36626)
        shuffled = tf.data.Dataset.from_tensor_slices(y).shuffle(int(order[7:]), seed=seed)
        y = np.fromiter(shuffled.as_numpy_iterator(), np.int32)
    elif order == "imbalanced":  # one class 80% of the shuffled data: its batches, mostly
        y = np.where(rng.random(EXAMPLES) < 0.8, 0, rng.integers(1, CLASSES, EXAMPLES))
    elif order == "classes-per-batch":  # P x K sampling: 4 classes of 8 examples each batch
        y = np.concatenate([np.repeat(rng.permutation(CLASSES)[:4], 8) for _ in y[::32]])
    elif order == "alternating":  # a GAN's discriminator: all real, then all fake
        y = np.tile(np.repeat([1, 0], batch), EXAMPLES // (2 * batch)).astype(np.int32)
    elif order == "collapsed":  # a policy's actions once it chose one (mixed at first)
        y = np.where(np.arange(EXAMPLES) < 320, rng.integers(0, 2, EXAMPLES), 1).astype(np.int32)
    elif order == "drawn":  # per-class batches drawn at random from classes 88:12
        y = np.repeat(rng.choice(2, EXAMPLES // batch, p=[0.88, 0.12]), batch).astype(np.int32)
    elif order == "clients":  # federated clients of one class each, 5 local batches in turn
        y = np.repeat(rng.integers(0, CLASSES, EXAMPLES // (5 * batch)), 5 * batch)
    return [y[i : i + batch] for i in range(0, EXAMPLES, batch)]


def _mostly_one(labels: np.ndarray) -> bool:
    return np.bincount(labels).max() >= 0.75 * len(labels)


@pytest.mark.parametrize("mode", ["eager", "graph", "jit"])
@pytest.mark.parametrize(
    ("order", "batch", "found"),
    [
        ("sorted", BATCH, True),
        ("buffer-64", BATCH, True),  # 9 in 10 batches 3/4 of one class, 1/3 mixed
        ("buffer-2000", BATCH, False),
        ("imbalanced", BATCH, False),  # one class dominates: not classes in turn
        ("classes-per-batch", BATCH, False),
        ("shuffled", BATCH, False),
        ("alternating", BATCH, False),
        ("collapsed", BATCH, False),
        ("drawn", BATCH, False),  # as many repeats as classes drawn at random give
        ("clients", BATCH, False),  # runs of a class 5 batches long
        ("sorted", 4, False),  # batches this small are of one class by chance too often
    ],
)
def test_batches_of_one_class_in_turn_are_told_from_alternating_or_collapsed_ones(
    mode, order, batch, found
):
    counts = chance.LabelCounts(LOSS, CLASSES)
    observe = counts.observe if mode == "eager" else tf.function(counts.observe)
    if mode == "jit":
        observe = tf.function(counts.observe, jit_compile=True)
    batches = labels_in_batches(order, batch)
    for labels in batches:
        observe(tf.constant(labels))
    finding = counts.batches_one_class(step=len(batches) - 1)
    assert (finding is not None) == found
    if found:  # (a batch counts as its most common class's when 3/4 of it are)
        major = [np.bincount(labels).argmax() if _mostly_one(labels) else -1 for labels in batches]
        single = sum(m >= 0 for m in major)
        same = sum(a == b >= 0 for a, b in zip(major, major[1:]))
        assert (finding.details["one_class"], finding.details["same_as_before"]) == (single, same)
        assert finding.details["batches"] == len(batches)
        assert "shuffle" in finding.message


def test_binary_labels_sorted_are_found_and_a_gans_real_then_fake_batches_are_not():
    loss = keras.losses.BinaryCrossentropy()
    for order, found in (("sorted", True), ("alternating", False)):
        counts = chance.LabelCounts(loss, 1)
        observe = tf.function(counts.observe)
        labels = labels_in_batches("alternating")
        if order == "sorted":
            labels = [np.full(BATCH, i >= len(labels) // 2, np.float32) for i in range(len(labels))]
        for batch in labels:
            observe(tf.constant(np.asarray(batch, np.float32).reshape(-1, 1)))
        assert (counts.batches_one_class(step=0) is not None) == found, order


# -- through the entry points: a small classifier over data in class order or shuffled ----------


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(CLASSES, FEATURES)).astype(np.float32)
    y = np.sort(rng.integers(0, CLASSES, EXAMPLES)).astype(np.int32)
    x = (centers[y] + rng.normal(size=(EXAMPLES, FEATURES))).astype(np.float32)
    return x, y, rng.permutation(EXAMPLES)


def classifier():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(CLASSES),
        ]
    )


def codes(report):
    return {f.code for f in report.findings}


@pytest.mark.parametrize("shuffled", [False, True], ids=["sorted", "shuffled"])
def test_train_step_and_the_guard_name_data_ordered_by_class(data, shuffled):
    x, y, permutation = data
    if shuffled:
        x, y = x[permutation], y[permutation]
    batches = [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, EXAMPLES, BATCH)]
    step = gradguard.TrainStep(classifier(), keras.optimizers.Adam(1e-2), LOSS, policy=WARN_ALL)
    model, optimizer = classifier(), keras.optimizers.Adam(1e-2)

    @tf.function
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    guarded = gradguard.guard(model, optimizer, policy=WARN_ALL)(train)
    for batch in batches:
        step(*batch)
        guarded(*batch)
    for report in (step.report(), guarded.report()):
        assert ("batches-one-class" in codes(report)) != shuffled


@pytest.mark.parametrize("shuffled", [False, True], ids=["sorted", "shuffled"])
def test_fit_on_a_dataset_without_shuffle_is_told_to_shuffle_it(data, shuffled):
    x, y, _ = data
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffled:
        dataset = dataset.shuffle(EXAMPLES, seed=0)
    model = classifier()
    model.compile(keras.optimizers.Adam(1e-2), LOSS)
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(dataset.batch(BATCH), epochs=1, verbose=0, callbacks=[callback])
    found = [f for f in callback.report().findings if f.code == "batches-one-class"]
    assert bool(found) != shuffled
    if found:
        assert found[0].details["classes"] == CLASSES
