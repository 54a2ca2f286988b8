"""Held-out inputs scaled unlike `fit`'s (`heldout_scale`, `heldout-scale-mismatch`): found when
`evaluate`, `predict` or `fit`'s validation data skips (or adds) the training data's
standardization or division by 255; silent for held-out data preprocessed alike, for a shift
between data sets of a few standard deviations, for a small sparse held-out set, and for one
gain on every feature given to a model whose first layer normalizes each example."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradguard.guarding import Guard
from gradguard.heldout_scale import HeldoutScales
from gradguard.options import Options

CODE = "heldout-scale-mismatch"


def _raw_features(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features on their own scales (means 20-80, spreads 5-15) and labels from them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.uniform(20, 80, 6), rng.uniform(5, 15, 6), size=(rows, 6))
    return x.astype("float32"), (x[:, 0] - x[:, 0].mean() > 0).astype("float32")


def _judged(trained: np.ndarray, given: np.ndarray, call: str = "evaluate") -> list[str]:
    scales, model = HeldoutScales(), object()
    scales.trained_on(model, trained)
    return [finding.code for finding in scales.given(model, call, given, step=9)]


def test_raw_features_against_standardized_training_are_found():
    x, _ = _raw_features(512)
    standardized = (x - x.mean(axis=0)) / x.std(axis=0)
    assert _judged(standardized, x[:64]) == [CODE]
    assert _judged(x, standardized[:64]) == []  # (narrower: no sign, a subset is narrower)
    assert _judged(standardized, x[:1], "predict") == [CODE]  # one example: its mean alone
    assert _judged(standardized, standardized[:64]) == []


@pytest.mark.parametrize("first", ["layer-norm", "unit-norm", "dense"])
def test_a_louder_copy_given_to_a_model_that_normalizes_each_example(first):
    """hunt14: a sensor model whose first layer takes out each recording's gain."""
    x, _ = _raw_features(512)
    standardized = (x - x.mean(axis=0)) / x.std(axis=0)
    layer = {
        "layer-norm": keras.layers.LayerNormalization(),
        "unit-norm": keras.layers.UnitNormalization(),
        "dense": keras.layers.Dense(4),
    }[first]
    model = keras.Sequential([keras.Input((6,)), layer, keras.layers.Dense(1)])

    def judged(given: np.ndarray) -> list[str]:
        scales = HeldoutScales()
        scales.trained_on(model, standardized)
        return [finding.code for finding in scales.given(model, "evaluate", given, step=9)]

    assert judged(20.0 * standardized[:64]) == ([] if first != "dense" else [CODE])
    # Features on their own scales again: no one gain, the model sees them apart.
    assert judged(x[:64]) == [CODE]


def test_part_of_the_data_is_no_other_scale():
    """hunt11: one class, a region, a short window, noisy copies of one point: all narrower."""
    x, y = _raw_features(2000)
    standardized = (x - x.mean(axis=0)) / x.std(axis=0)
    assert _judged(standardized, standardized[y == 1]) == []
    assert _judged(standardized, standardized[:1] + 0.02 * standardized[:64]) == []
    assert _judged(standardized, np.sort(standardized, axis=0)[-30:]) == []  # (the top 30)


def test_data_stored_in_order_is_read_over_all_of_it():
    """hunt11: 1100 night frames, then 400 day frames: the profile spans both."""
    night = np.random.default_rng(6).uniform(0.0, 0.1, size=(1100, 4))
    day = np.random.default_rng(7).uniform(0.2, 1.0, size=(400, 4))
    assert _judged(np.concatenate([night, day]), day[:50]) == []


def test_a_model_fine_tuned_on_part_of_the_data_may_be_evaluated_on_all():
    x, _ = _raw_features(2000)
    standardized = (x - x.mean(axis=0)) / x.std(axis=0)
    region = standardized[np.argsort(standardized[:, 0])[:100]]  # (a narrow slice of it)
    scales, model = HeldoutScales(), object()
    scales.trained_on(model, standardized)
    scales.trained_on(model, region)
    assert scales.given(model, "evaluate", standardized[:200], step=1) == []
    assert [f.code for f in scales.given(model, "evaluate", x[:200], step=1)] == [CODE]


def test_one_rare_value_among_many_inputs_is_no_other_scale():
    """hunt11: one hand-made example with a count seen twice in training, beside other inputs."""
    rng = np.random.default_rng(8)
    columns = {f"c{i}": rng.normal(size=(1000, 1)) for i in range(5)}
    columns["count"] = (rng.random((1000, 1)) < 0.005) * 3.0
    example = {key: value[:1] * 0 + 0.1 for key, value in columns.items()} | {
        "count": np.array([[3.0]])
    }
    assert _judged(columns, example, "predict") == []


def test_images_not_divided_by_255_are_found_by_their_channels():
    images = np.random.default_rng(1).integers(0, 256, size=(64, 8, 8, 3)).astype("uint8")
    assert _judged(images / 255.0, images) == [CODE]
    assert _judged(images / 255.0, images[:16] / 255.0) == []


def test_a_shift_between_data_sets_of_a_few_standard_deviations_is_silent():
    x, _ = _raw_features(512)
    later, _ = _raw_features(128, seed=1)  # (other means and spreads, drawn alike)
    assert _judged(x, x[:128] + 3 * x.std(axis=0)) == []
    assert _judged(x, later) == []


def test_a_copy_offset_alike_on_every_feature_is_a_robustness_study():
    """hunt12: a test set moved by 30 training standard deviations on purpose, spread kept."""
    data, _ = _raw_features(768)
    x, test = data[:512], data[512:]
    assert _judged(x, test + 30 * x.std(axis=0)) == []
    assert _judged(x, test + 30 * x.std(axis=0) * np.linspace(1, 2, 6)) == [CODE]  # (unalike)
    assert _judged(x[:, :1], test[:, :1] + 30 * x.std(axis=0)[:1]) == [CODE]  # (one feature)


def test_a_small_sparse_held_out_set_is_silent():
    rng = np.random.default_rng(2)
    counts = (rng.random((2000, 300)) < rng.uniform(0.0005, 0.05, 300)).astype("float32")
    assert _judged(counts, counts[:12]) == []


def test_inputs_are_compared_one_by_one_and_only_alike():
    x, _ = _raw_features(256)
    ids = np.random.default_rng(3).integers(1, 50, size=(256, 5))
    standardized = (x - x.mean(axis=0)) / x.std(axis=0)
    assert _judged([standardized, ids], [x, ids]) == [CODE]
    assert _judged({"a": standardized, "b": ids}, {"a": standardized, "b": ids}) == []
    assert _judged({"a": standardized}, {"a": x, "b": ids}) == [CODE]  # (by name)
    assert _judged({"a": standardized}, {"b": x}) == []
    assert _judged(standardized, x[:, :3]) == []  # (other features: not comparable)
    assert _judged(standardized, [x, ids]) == []
    assert _judged(standardized, np.array([["a"] * 6] * 4)) == []  # (strings: not read)


@pytest.fixture(scope="module")
def fit_model():
    """A small classifier fit on standardized features, and the features' mean and spread."""
    x, y = _raw_features(256)
    mean, std = x.mean(axis=0), x.std(axis=0)
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    return model, x, y, mean, std


@pytest.mark.parametrize("call", ["evaluate", "predict", "validation_data", "standardized"])
def test_under_a_process_wide_guard_each_held_out_call_is_judged(fit_model, call):
    model, x, y, mean, std = fit_model
    test, test_y = _raw_features(64, seed=5)
    scaled = (test - mean) / std
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        validation = (test, test_y) if call == "validation_data" else None
        model.fit((x - mean) / std, y, epochs=1, verbose=0, validation_data=validation)
        if call == "evaluate":
            model.evaluate(test, test_y, verbose=0)
        elif call == "predict":
            model.predict(test[:3], verbose=0)
        else:
            model.evaluate(scaled, test_y, verbose=0)
            model.predict(scaled, verbose=0)
        found = [f for f in guard.read(final=True).findings if f.code == CODE]
    assert [f.details["call"] for f in found] == ([] if call == "standardized" else [call])
