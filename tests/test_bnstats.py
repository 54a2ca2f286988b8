"""`batchnorm-statistics-stale`: a short `fit` whose BatchNormalization never caught up."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import bnstats

FEATURES, CLASSES = 20, 4


def _data(rows: int = 1600) -> tuple[np.ndarray, np.ndarray]:
    """Raw features far from zero (mean 12, spread 3), four classes."""
    rng = np.random.default_rng(35)
    centers = rng.normal(size=(CLASSES, FEATURES)) * 0.6
    y = rng.integers(0, CLASSES, rows)
    x = 12.0 + 3.0 * (centers[y] + rng.normal(size=(rows, FEATURES)))
    return x.astype("float32"), y


def _model(momentum: float, trainable: bool = True, dropout: float = 0.0) -> keras.Model:
    """A compiled model with two BatchNormalizations."""
    keras.utils.set_random_seed(35)
    first = keras.layers.BatchNormalization(momentum=momentum, trainable=trainable)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            first,
            keras.layers.Dense(64),
            keras.layers.BatchNormalization(momentum=momentum, trainable=trainable),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(CLASSES),
        ]
    )
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def _fit(momentum: float, **options: Any) -> tuple[Any, ...]:
    """`_model` fitted for 75 updates: (model, its first epoch's loss, fit's arguments)."""
    model = _model(momentum, **options)
    x, y = _data()
    arguments = {"x": x, "y": y, "epochs": 3, "batch_size": 64}
    history = model.fit(verbose=0, **arguments)
    return model, history.history["loss"][0], arguments


@pytest.fixture(scope="module")
def short_fit() -> tuple[Any, ...]:
    return _fit(momentum=0.99)


def test_a_short_fit_at_the_default_momentum_is_found(short_fit):
    model, first, arguments = short_fit
    finding = bnstats.stale_statistics(model, first, arguments, step=74)
    assert finding is not None and finding.code == "batchnorm-statistics-stale"
    details = finding.details
    assert details["momentum"] == pytest.approx(0.99) and details["updates"] == 75
    assert details["inference_loss"] > 2 * details["training_mode_loss"]
    assert len(details["layers"]) == 2
    assert "momentum 0.99" in finding.message and "made 75" in finding.message
    # Its classes change too (accuracy 0.61 against 0.90): not called a matter of probabilities.
    assert details["classes_agree"] < bnstats.AGREE and "same class" not in finding.message


def test_stale_statistics_that_change_no_class_are_said_to_change_the_probabilities_only():
    # A Conv1D classifier of three frequencies, 150 updates at the default momentum (hunt25
    # h50): log-loss 0.43 in inference against 0.09, and every example keeps its class.
    rng = np.random.default_rng(14)
    keras.utils.set_random_seed(14)
    y = rng.integers(0, 3, 1600)
    time = np.linspace(0, 1, 32)
    phase = rng.uniform(0, 6, (1600, 1))
    waves = np.sin(2 * np.pi * np.array([2, 5, 9])[y][:, None] * time + phase)
    x = (waves + 0.3 * rng.normal(size=(1600, 32)))[..., None].astype("float32")
    layers = [keras.Input((32, 1))]
    for _ in range(2):
        conv = keras.layers.Conv1D(16, 5, padding="same")
        layers += [conv, keras.layers.BatchNormalization(), keras.layers.ReLU()]
    layers += [keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    arguments = {"x": x, "y": y, "epochs": 3, "batch_size": 32}
    history = model.fit(verbose=0, **arguments)
    finding = bnstats.stale_statistics(model, history.history["loss"][0], arguments, step=149)
    assert finding is not None, "the moving statistics lag: the finding stays"
    assert finding.details["classes_agree"] >= bnstats.AGREE
    assert "same class in both modes" in finding.message


def test_the_check_leaves_the_moving_statistics_and_seeds_as_fit_left_them():
    model, first, arguments = _fit(momentum=0.99, dropout=0.3)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    assert bnstats.stale_statistics(model, first, arguments, step=74) is not None
    after = [v.numpy() for v in model.non_trainable_variables]
    assert len(before) == 5  # two means, two variances, the dropout's seed
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize(
    "options",
    [{"momentum": 0.9}, {"momentum": 0.99, "trainable": False}],
    ids=["momentum-0.9", "frozen"],
)
def test_caught_up_or_frozen_statistics_are_silent(options):
    # Momentum 0.9 averages about ten updates; a frozen layer normalizes the same in both modes.
    model, first, arguments = _fit(**options)
    assert bnstats.stale_statistics(model, first, arguments, step=74) is None


def test_a_loss_of_zero_in_both_modes_is_silent(short_fit, monkeypatch):
    # A GAN's own train_step, compiled without a loss: nothing gained, whatever `first` says.
    model, first, arguments = short_fit
    monkeypatch.setattr(model, "compute_loss", lambda **kwargs: tf.constant(0.0))
    assert bnstats.stale_statistics(model, first, arguments, step=74) is None
    assert bnstats.stale_statistics(model, -1.0, arguments, step=74) is None


def test_a_data_sets_first_batches_are_read_and_a_generator_is_not(short_fit):
    model, first, arguments = short_fit
    data = tf.data.Dataset.from_tensor_slices((arguments["x"], arguments["y"])).batch(64)
    found = bnstats.stale_statistics(model, first, {"x": data.repeat()}, step=74)
    assert found is not None and found.code == "batchnorm-statistics-stale"
    generator = (
        (arguments["x"][i : i + 64], arguments["y"][i : i + 64]) for i in range(0, 1600, 64)
    )
    assert bnstats.stale_statistics(model, first, {"x": generator}, step=74) is None
    assert next(generator)[0].shape == (64, FEATURES)  # (left unread)
    unlabeled = tf.data.Dataset.from_tensor_slices(arguments["x"]).batch(64)
    assert bnstats.stale_statistics(model, first, {"x": unlabeled}, step=74) is None


def test_only_the_training_part_of_a_validation_split_is_read(short_fit):
    model, first, arguments = short_fit
    x, y = arguments["x"], arguments["y"]
    # The held-out last quarter made unreadable: the check must not touch it.
    x = np.concatenate([x, np.full((len(x) // 3, FEATURES), np.nan, np.float32)])
    y = np.concatenate([y, np.zeros(len(x) - len(y), y.dtype)])
    split = {**arguments, "x": x, "y": y, "validation_split": 0.25}
    assert bnstats.stale_statistics(model, first, split, step=74) is not None


def test_a_loop_of_short_fits_is_judged_once_its_last_fit_returned():
    # Twelve fit(epochs=1) calls are one run of 300 updates: the averages lag after the first
    # call (found then) and have caught up after the last.
    model, stale = _model(momentum=0.99), bnstats.StaleStatistics()
    x, y = _data()
    arguments = {"x": x, "y": y, "batch_size": 64}
    for epoch in range(12):
        history = model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        stale.fit_ended(model, arguments, history, step=25 * epoch + 24)
        if epoch == 0:
            after_one = bnstats.StaleStatistics()
            after_one.fit_ended(model, arguments, history, step=24)
            assert [f.code for f in after_one.judge()] == ["batchnorm-statistics-stale"]
    assert stale.judge() == []


def test_a_momentum_in_pytorchs_convention_is_told_to_rise():
    """momentum=0.1 (PyTorch's weight of the new batch) keeps the last, 3-row, batch's
    statistics: found, and the message asks for a higher momentum, not a lower one."""
    model = _model(momentum=0.1)
    x, y = _data(rows=1603)  # (25 batches of 64 and one of 3)
    arguments = {"x": x, "y": y, "epochs": 3, "batch_size": 64}
    history = model.fit(verbose=0, **arguments)
    finding = bnstats.stale_statistics(model, history.history["loss"][0], arguments, step=77)
    assert finding is not None, "momentum 0.1 with a 3-row last batch was not found"
    assert "PyTorch's momentum=0.1" in finding.message and "Raise the momentum" in finding.message
    assert "Lower the momentum" not in finding.message
