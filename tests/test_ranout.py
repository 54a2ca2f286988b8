"""`fit` whose data ran out long before ``steps_per_epoch * epochs`` (`data-exhausted`, under
``gradguard run``): a data set without `.repeat()` is found; repeated, without
`steps_per_epoch` (Keras warns as it learns an unknown length), or a little short, silent."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard.guarding import Guard
from gradguard.options import Options


def _fit(data: str) -> tuple[list, bool]:
    """The findings of a 2-epoch fit on 10 batches, and whether Keras warned its data ran out."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # 10 batches
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, "sigmoid")])
    model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    options = {"steps_per_epoch": 30, "epochs": 2}  # 60 steps asked for
    if data == "repeated":
        batches = batches.repeat()
    elif data == "unknown-length":  # (Keras warns once as it learns the length: healthy)
        batches, options = batches.filter(lambda x, y: True), {"epochs": 2}
    elif data == "arrays":  # 10 batches a pass, 30 asked for each epoch: 20 of 60 run
        batches, options = x, {"y": y, "batch_size": 16, **options}
    elif data == "a-little-short":
        options = {"steps_per_epoch": 12, "epochs": 1}  # 10 of 12 run
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process(), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.fit(batches, verbose=0, **options)
    ran_out = any("ran out of data" in str(w.message) for w in seen)
    return guard.read(final=True).findings, ran_out


@pytest.mark.parametrize(
    "data", ["not-repeated", "arrays", "repeated", "unknown-length", "a-little-short"]
)
def test_fit_whose_data_ran_out_is_found(data):
    findings, warned = _fit(data)
    assert warned == (data != "repeated")  # Keras' own warning: all but the first are healthy
    found = [f for f in findings if f.code == "data-exhausted"]
    assert bool(found) == (data in ("not-repeated", "arrays")), found
    if found:
        assert found[0].details == {"ran": 20, "asked": 60}, found[0].details  # 10 an epoch
        assert "fit ran 20 steps of the 60 asked for" in found[0].message
        assert (".repeat()" in found[0].message) == (data == "not-repeated")
