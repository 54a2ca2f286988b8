"""Examples scaled to unit length one by one (`rownorm`, a suspect): named from `TrainStep`'s
first batch and from `fit`'s array under ``gradguard run`` (not from fit's batches in-graph: too
costly a step); standardized features, 2-D points and images are not."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import gradguard
from gradguard import rownorm, suspects
from gradguard.guarding import Guard
from gradguard.options import Options


def _features(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Tabular data whose class is in the examples' overall size."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=n)
    x = (rng.uniform(0.5, 1.5, size=(n, 10)) * (1.0 + 2.0 * y[:, None])).astype("float32")
    return x, y


def _model() -> keras.Model:
    keras.utils.set_random_seed(4)
    return keras.Sequential([keras.Input((10,)), keras.layers.Dense(2)])


@pytest.mark.parametrize("rows", ["unit", "standardized"])
def test_train_step_notes_examples_scaled_to_unit_length(rows):
    x, y = _features()
    if rows == "unit":
        x = keras.utils.normalize(x, axis=1).astype("float32")
    else:
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    step = gradguard.TrainStep(_model(), keras.optimizers.Adam(1e-3), loss)
    step(x[:16], y[:16])
    noted = step.core.notes["rows_normalized"]
    assert (noted is not None and "an L2 norm of exactly 1" in noted) == (rows == "unit")


@pytest.mark.parametrize("rows", ["unit", "standardized"])
def test_run_notes_fits_array_of_examples_scaled_to_unit_length(rows):
    x, y = _features()
    x = keras.utils.normalize(x, axis=1) if rows == "unit" else (x - x.mean(0)) / x.std(0)
    model = _model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x.astype("float32"), y, batch_size=16, epochs=1, verbose=0)
    guard.read(final=True)
    (core,) = guard.cores.values()
    noted = core.notes["rows_normalized"]
    assert (noted is not None and "an L2 norm of exactly 1" in noted) == (rows == "unit")


def test_only_2d_float_inputs_of_several_features_are_read():
    angles = np.linspace(0, 6, 32)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")
    assert rownorm.first_batch_suspect(circle) is None  # 2 features: points on a circle
    unit = keras.utils.normalize(np.random.default_rng(0).random((32, 8)), axis=1)
    assert rownorm.first_batch_suspect(unit.astype("float32")) is not None
    assert rownorm.first_batch_suspect(unit[:4].astype("float32")) is None  # too few examples
    images = unit.reshape(32, 2, 4).astype("float32")
    assert rownorm.first_batch_suspect(images) is None
    assert rownorm.first_batch_suspect(np.arange(64).reshape(8, 8)) is None  # token ids


def test_random_flips_and_rotations_are_named_as_suspects():
    layers = keras.layers
    flipped = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.RandomFlip("horizontal", name="flip"),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    (phrase,) = suspects.of_model(flipped)
    assert phrase.startswith("'flip': flip or rotate the images at random"), phrase
    plain = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(2)])
    assert suspects.of_model(plain) == []
