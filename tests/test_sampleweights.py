"""Sample weights far below 1 under plain SGD (`update-too-small` names them): weights
normalized to sum to 1 shrink every step 1/N; weights of mean 1, and Adam, stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import sampleweights
from gradguard.fit_batches import FitBatches
from gradguard.guarding import Guard
from gradguard.options import Options


def _data(n: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A linear task, 20% positives, with "balanced" per-example weights of mean 1."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 8)).astype("float32")
    score = x[:, 0] - x[:, 1]
    y = (score > np.quantile(score, 0.8)).astype("float32")[:, None]
    w = np.where(y[:, 0] == 1, 0.5 / 0.2, 0.5 / 0.8)
    return x, y, (w / w.mean()).astype("float32")


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1, "sigmoid")]
    )


def _train(entry: str, weights: np.ndarray, optimizer: keras.optimizers.Optimizer):
    """Two epochs of batches of 32 through `fit` + `GuardCallback` or a `TrainStep` loop."""
    x, y, _ = _data()
    model, loss = _model(), keras.losses.BinaryCrossentropy()
    if entry == "fit":
        model.compile(optimizer, loss)
        callback = gradguard.GuardCallback()
        model.fit(
            x, y, sample_weight=weights, batch_size=32, epochs=2, verbose=0, callbacks=[callback]
        )
        return callback.report()
    if entry == "run":  # read from fit's arguments as it starts, no fold in its train step
        model.compile(optimizer, loss)
        guard = Guard(options=Options.create(), raise_errors=False)
        with guard.instrument_process():
            model.fit(x, y, sample_weight=weights, batch_size=32, epochs=2, verbose=0)
        return guard.read(final=True)
    step = gradguard.TrainStep(model, optimizer, loss, every=4)
    for _ in range(2):
        for i in range(0, len(x), 32):
            step(x[i : i + 32], y[i : i + 32], weights[i : i + 32])
    return step.report()


@pytest.mark.parametrize("entry", ["fit", "run", "train_step"])
def test_weights_summing_to_one_under_sgd_are_named(entry):
    _, _, mean_one = _data()
    sgd = keras.optimizers.SGD(0.05, momentum=0.9)
    report = _train(entry, mean_one / mean_one.sum(), sgd)
    small = [f for f in report.findings if f.code == "update-too-small"]
    assert small and "every sample weight is" in small[0].message, report.findings
    assert "w * len(w) / w.sum()" in small[0].message


@pytest.mark.parametrize(
    "entry, scale, optimizer",
    [
        ("fit", "mean-one", lambda: keras.optimizers.SGD(0.05, momentum=0.9)),
        ("train_step", "mean-one", lambda: keras.optimizers.SGD(0.05, momentum=0.9)),
        ("run", "mean-one", lambda: keras.optimizers.SGD(0.05, momentum=0.9)),
        # Adam divides the weights' scale out again: its steps keep their size.
        ("fit", "sum-to-one", lambda: keras.optimizers.Adam(1e-2)),
    ],
)
def test_weights_of_mean_one_or_adam_stay_silent(entry, scale, optimizer):
    _, _, mean_one = _data()
    weights = mean_one if scale == "mean-one" else mean_one / mean_one.sum()
    report = _train(entry, weights, optimizer())
    assert not report.findings, report.findings


def test_largest_weight_is_read_from_a_batch_and_folded_over_fits_batches():
    assert sampleweights.largest(None) is None
    assert sampleweights.largest(np.array([0.25, -0.5], "float32")) == 0.5
    folded = sampleweights.LargestWeight()
    assert folded.value() is None
    for batch in ([0.1, 0.2], [0.4, 0.3], [0.05]):
        folded.observe(keras.ops.convert_to_tensor(np.array(batch, "float32")))
    assert folded.value() == pytest.approx(0.4)


def test_fits_arrays_tell_the_largest_weight_in_place_of_a_fold():
    model = _model()
    batches = FitBatches()
    arguments = {"x": np.zeros((4, 8)), "y": np.array([0, 1, 1, 0]), "class_weight": {0: 0.5}}
    assert batches.given(model, arguments, step=0) == []

    @tf.function
    def step(weights: tf.Tensor) -> None:
        batches.observe(model, tf.zeros((2, 8)), tf.zeros((2, 1)), weights)

    step(tf.constant([2.0, 3.0]))  # (fit's batches: not folded, its arguments told)
    assert batches.input_notes(model)["sample_weight_largest"] == 1.0  # (class 1 left out)
    assert sampleweights.largest_of_classes({0: 0.5, 1: 0.01}, np.array([[0], [1]])) == 0.5
    assert sampleweights.largest_of_classes({0: 0.5}, np.array([0.2, 0.7])) is None  # no ids
    dataset_fed = FitBatches()  # a data set's weights: only its batches tell
    dataset_fed.given(model, {"x": tf.data.Dataset.range(3)}, step=0)
    dataset_fed.observe(model, tf.zeros((2, 8)), tf.zeros((2, 1)), tf.constant([2.0, 3.0]))
    assert dataset_fed.input_notes(model)["sample_weight_largest"] == 3.0
