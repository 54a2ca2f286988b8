"""Pixels divided by 255 twice (`inputs-rescaled-twice`): told from the batches alone, or with
the Rescaling layer the model starts with; pixels scaled once, in any form, stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import fit_and_train_step

from gradguard import rescaled

layers = keras.layers


def _pixels(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """8-bit 8x8 images (0..255, as float32) whose class is their brighter half."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 128, size=(n, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 2, size=n)
    for i, c in enumerate(y):
        x[i, 4 * c : 4 * c + 4] += 127.0
    return x, y


def _model(*first: keras.layers.Layer) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((8, 8, 1)), *first, layers.Flatten(), layers.Dense(2, name="head")]
    )


def test_the_scale_a_model_starts_with_is_read_from_its_first_layers():
    flip = layers.RandomFlip("horizontal")
    rescaling = layers.Rescaling(1.0 / 255, name="rescale")
    assert rescaled.input_scale(_model()) == (1.0, None)
    assert rescaled.input_scale(_model(flip, rescaling)) == (pytest.approx(1 / 255), "rescale")
    # A shift ([-1, 1] inputs), and a Rescaling after a computing layer: not the inputs' scale.
    assert rescaled.input_scale(_model(layers.Rescaling(1 / 127.5, offset=-1))) is None
    later = _model(layers.Conv2D(2, 3), layers.Rescaling(1 / 255))
    assert rescaled.input_scale(later) == (1.0, None)

    class Subclassed(keras.Model):  # its call may rescale: not read
        def call(self, x):
            return x

    assert rescaled.input_scale(Subclassed()) is None


@pytest.mark.parametrize(
    "scale, first, found",
    [
        (1 / 255**2, (), True),  # divided twice before the model
        (1 / 255, (layers.Rescaling(1 / 255, name="rescale"),), True),  # and by its layer
        (1 / 255, (), False),  # once
        (1.0, (layers.Rescaling(1 / 255),), False),  # once, by the layer
        # Dark 16-bit images divided once, by 65535: as small, but not 8-bit pixels over 65025.
        ("16-bit", (), False),
        (None, (), False),  # standardized
    ],
    ids=["twice", "twice-with-layer", "once", "once-by-layer", "16-bit", "standardized"],
)
def test_pixels_divided_by_255_twice_are_found_in_the_first_batch(scale, first, found):
    x, _ = _pixels()
    if scale == "16-bit":
        x = np.random.default_rng(1).integers(1, 250, size=x.shape).astype("float32") / 65535
    else:
        x = (x - x.mean()) / x.std() if scale is None else x * scale
    finding = rescaled.first_batch_finding(_model(*first), x, step=0)
    assert (finding is not None) == found, finding
    if found and first:
        assert "its Rescaling layer 'rescale'" in finding.message, finding.message
    if found:
        assert "whole numbers over 65025" in finding.message


def test_small_inputs_that_are_not_pixels_divided_twice_are_not_reported():
    rng = np.random.default_rng(2)
    flat = keras.Sequential([keras.Input((64, 64, 3)), layers.Flatten(), layers.Dense(1)])
    # Divided once, the top rows dark background (pixels 0 and 1), the rest bright: the sample
    # strides over the whole image.
    night = rng.integers(0, 256, size=(4, 64, 64, 3)).astype("float32")
    night[:, :30] = rng.integers(0, 2, size=(4, 30, 64, 3))
    # A mask of 0 and 1/255 (two levels); power spectra in tiny physical units (V^2/Hz).
    mask = rng.integers(0, 2, size=(4, 64, 64, 3)).astype("float32")
    spectra = rng.uniform(5e-13, 9e-10, size=(4, 64, 64, 3)).astype("float32")
    for x in (night / 255, mask / 255, spectra):
        assert rescaled.first_batch_finding(flat, x, step=0) is None
    # The same night frames divided twice are found, though their top rows are dark.
    assert rescaled.first_batch_finding(flat, night / 255**2, step=0) is not None


def test_a_model_that_standardizes_its_inputs_first_is_not_judged_on_their_scale():
    x, _ = _pixels()
    for first in (layers.BatchNormalization(), layers.Normalization(mean=100.0, variance=900.0)):
        model = _model(first)
        assert rescaled.input_scale(model) is None
        assert rescaled.first_batch_finding(model, x / 255**2, step=0) is None
        assert rescaled.first_batch_suspect(model, x) is None


@pytest.mark.parametrize(
    "scale, first, named",
    [(1.0, (), True), (1 / 255, (), False), (1.0, (layers.Rescaling(1 / 255),), False)],
    ids=["raw", "divided", "divided-by-layer"],
)
def test_pixels_never_scaled_are_a_suspect(scale, first, named):
    x, _ = _pixels()
    phrase = rescaled.first_batch_suspect(_model(*first), x * scale)
    assert (phrase is not None) == named, phrase
    if named:
        assert phrase.startswith("the inputs: 8-bit pixels never scaled (whole numbers in [0, 2")


def test_a_few_tabular_features_or_integer_inputs_are_not_read_as_pixels():
    tabular = keras.Sequential([keras.Input((10,)), layers.Dense(1)])
    features = np.arange(40, dtype="float32").reshape(4, 10) / 255**2
    assert rescaled.first_batch_finding(tabular, features, step=0) is None
    tokens = keras.Sequential([keras.Input((64,)), layers.Embedding(300, 2), layers.Flatten()])
    assert rescaled.first_batch_finding(tokens, np.ones((4, 64), "int32"), step=0) is None


@pytest.mark.parametrize(
    "scale, rescaling, twice",
    [(1 / 255**2, False, True), (1 / 255, True, True), (1 / 255, False, False)],
    ids=["twice", "twice-with-layer", "once"],
)
def test_fit_and_train_step_find_pixels_divided_twice(scale, rescaling, twice):
    x, y = _pixels()
    x = x * scale

    def model() -> keras.Model:
        return _model(layers.Rescaling(1 / 255)) if rescaling else _model()

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    callback, step = fit_and_train_step(model, loss, x, y)
    for report in (callback.report(), step.report()):
        found = [f for f in report.findings if f.code == "inputs-rescaled-twice"]
        assert bool(found) == twice, str(report)
    for core in [*callback.guard.cores.values(), step.core]:  # (pixels were scaled)
        assert core.notes["raw_pixels"] is None


@pytest.mark.parametrize(
    "cast, named",
    [
        (lambda x: x, "8-bit pixels never scaled"),
        (lambda x: x.astype("uint8"), "8-bit pixels never scaled"),
        # Scaled to [0, 1], then cast back to bytes: every value truncates to 0.
        (lambda x: (x / 255.0).astype("uint8"), "every value read was exactly 0"),
    ],
    ids=["float", "uint8", "scaled-then-cast-to-uint8"],
)
def test_fit_and_train_step_note_pixels_never_scaled_or_zeroed(cast, named):
    x, y = _pixels()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    callback, step = fit_and_train_step(_model, loss, cast(x), y)
    callback.report()
    for core in [*callback.guard.cores.values(), step.core]:
        assert named in (core.notes["raw_pixels"] or ""), core.notes


def _preprocess_input(x: np.ndarray) -> np.ndarray:
    """MobileNet's, Inception's and ResNetV2's preprocess_input: 0..255 to [-1, 1]."""
    return x / 127.5 - 1.0


@pytest.mark.parametrize(
    "inputs, found",
    [
        ("scaled, then preprocess_input", True),
        ("preprocess_input", False),  # 0..255 to [-1, 1], as meant
        ("dark images, preprocess_input", False),  # pixels 0 and 1 only: two levels
    ],
)
def test_pixels_scaled_to_one_before_preprocess_input_are_found(inputs, found):
    x, y = _pixels()
    if inputs.startswith("dark"):
        x = (x > 128).astype("float32")
    x = _preprocess_input(x / 255.0 if inputs.startswith("scaled") else x).astype("float32")
    assert (rescaled.first_batch_finding(_model(), x, step=0) is not None) == found
    if found:  # (and in-graph, under fit and TrainStep)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        callback, step = fit_and_train_step(_model, loss, x, y)
        for report in (callback.report(), step.report()):
            (finding,) = [f for f in report.findings if f.code == "inputs-rescaled-twice"]
            assert "preprocess_input that expects 0..255" in finding.message
