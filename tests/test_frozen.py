"""Frozen layers never trained nor loaded (`frozen-untrained`): a frozen base that still holds
its initializers' draws is found under `fit` and `TrainStep`; pretrained or loaded bases, one
random-feature layer, fixed (constant) transforms, a GAN's discriminator trained by its own
step and a frozen random target the trained layers do not read stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import gradguard
from gradguard import frozen

layers = keras.layers


def _base(*extra: keras.layers.Layer) -> keras.Sequential:
    return keras.Sequential(
        [keras.Input((8,)), layers.Dense(16, "relu"), layers.Dense(8, "relu"), *extra],
        name="base",
    )


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(256, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def _classifier(base: keras.Model) -> keras.Sequential:
    base.trainable = False
    return keras.Sequential([base, layers.Dense(2, name="head")])


@pytest.mark.parametrize("entry", ["fit", "train_step"])
def test_a_frozen_base_never_trained_is_found(entry):
    keras.utils.set_random_seed(5)
    model, (x, y) = _classifier(_base()), _data()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if entry == "fit":
        model.compile(keras.optimizers.Adam(1e-2), loss)
        callback = gradguard.GuardCallback()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
        report = callback.report()
    else:
        step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), loss)
        for i in range(0, len(x), 8):
            step(x[i : i + 8], y[i : i + 8])
        report = step.report()
    (found,) = [f for f in report.findings if f.code == "frozen-untrained"]
    names = found.details["layers"]
    assert len(names) == 2 and all(name.startswith("base/dense") for name in names), found
    assert "never trained nor loaded" in found.message


def _judged(model: keras.Model, step: int = frozen.AFTER) -> list[str]:
    return [f.code for f in frozen.FrozenUntrained().judge([model], step)]


def test_the_judgment_waits_for_its_steps_then_reads_every_frozen_layer():
    keras.utils.set_random_seed(5)
    model = _classifier(_base())
    assert _judged(model, step=frozen.AFTER - 1) == []
    assert _judged(model) == ["frozen-untrained"]
    # Short runs are judged at their last read.
    assert frozen.FrozenUntrained().judge([model], 3, final=True)


def test_loaded_or_trained_bases_are_silent():
    keras.utils.set_random_seed(5)
    loaded = _classifier(_base())
    donor = _base()  # (another draw: as weights loaded from a file)
    loaded.layers[0].set_weights(donor.get_weights())
    assert _judged(loaded) == []
    # One layer trained, one still as drawn (a partial load): fewer than two untouched.
    partial = _classifier(_base())
    kernel = partial.layers[0].layers[0].kernel
    kernel.assign(kernel + 1e-3)
    assert _judged(partial) == []


def test_one_random_feature_layer_and_fixed_transforms_are_silent():
    keras.utils.set_random_seed(5)
    single = keras.Sequential([keras.Input((8,)), layers.Dense(64, "relu", name="random")])
    assert _judged(_classifier(single)) == []
    fixed = keras.Sequential(
        [
            keras.Input((8,)),
            layers.Dense(8, kernel_initializer="identity"),
            layers.Dense(8, kernel_initializer=keras.initializers.Constant(0.5)),
        ]
    )
    assert _judged(_classifier(fixed)) == []


def test_a_gans_frozen_discriminator_is_silent():
    keras.utils.set_random_seed(5)
    discriminator = keras.Sequential(
        [keras.Input((8,)), layers.Dense(16, "relu"), layers.Dense(1)], name="discriminator"
    )
    discriminator.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(True))
    generator = keras.Sequential([keras.Input((4,)), layers.Dense(8)], name="generator")
    discriminator.trainable = False  # (the classic pattern: frozen inside the combined model)
    combined = keras.Sequential([generator, discriminator])
    # It reads the generator, not the other way: not judged even before its first step.
    assert _judged(combined) == []
    discriminator.trainable = True
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    discriminator.train_on_batch(x, np.ones((16, 1), "float32"))
    discriminator.trainable = False
    assert _judged(combined) == []


def test_a_frozen_random_target_the_trained_layers_do_not_read_is_silent():
    # Random network distillation: a predictor learns to match a frozen random network.
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8,))
    target = _base()
    target.trainable = False
    predictor = keras.Sequential([keras.Input((8,)), layers.Dense(16, "relu"), layers.Dense(8)])
    model = keras.Model(inputs, [predictor(inputs), target(inputs)])
    assert _judged(model) == []


def test_variables_too_large_to_draw_again_are_not_claimed(monkeypatch):
    keras.utils.set_random_seed(5)
    model = _classifier(_base())
    monkeypatch.setattr(frozen, "MAX_DRAWN", 16)  # (a vocabulary's embeddings, in earnest)
    assert _judged(model) == []
