"""Layers frozen after `fit` trained them, then `fit` again without `compile`
(`frozen-still-trained`): Keras 3 reuses the train function, which still updates them. A real
two-stage fit under ``gradguard run``'s guard; a `compile` between the stages, and layers frozen
before the first `fit`, stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradguard.guarding import Guard
from gradguard.options import Options

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(64, 4)).astype("float32")
_Y = _RNG.normal(size=(64, 1)).astype("float32")


@pytest.mark.parametrize("stages", ["fit-freeze-fit", "fit-freeze-compile-fit", "freeze-fit-fit"])
def test_layers_frozen_between_fits_without_compile_are_found(stages):
    keras.utils.set_random_seed(0)
    base = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu")], name="base"
    )
    model = keras.Sequential([base, keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        if stages.startswith("freeze"):
            base.trainable = False
        else:
            model.fit(_X, _Y, batch_size=16, epochs=1, verbose=0)
            base.trainable = False
        if "compile" in stages:
            model.compile(keras.optimizers.SGD(0.05), "mse")
        kept = [w.copy() for w in base.get_weights()]
        model.fit(_X, _Y, batch_size=16, epochs=1, verbose=0)
    moved = any(not np.array_equal(a, b) for a, b in zip(kept, base.get_weights()))
    found = [f for f in guard.read(final=True).findings if f.code == "frozen-still-trained"]
    assert bool(found) == moved == (stages == "fit-freeze-fit"), (found, moved)
    if found:
        assert found[0].details == {"model": model.name, "frozen": 2}
        assert "model.compile" in found[0].message
        assert set(found[0].variables) == {w.path for w in base.weights}  # (not the model's)
