"""`fit` whose data ran out long before ``steps_per_epoch * epochs`` (`data-exhausted`), under
``gradguard run`` and `GuardCallback`: a data set without `.repeat()`, or arrays, shorter than
asked for are found; repeated, without `steps_per_epoch` (Keras warns as it learns an unknown
length), a little short, or stopped by a callback, silent."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard.guarding import Guard
from gradguard.options import Options


class _StopAtThirdBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.model.stop_training = batch >= 2


def _fit(entry: str, data: str) -> tuple[list, bool]:
    """The findings of a 2-epoch fit on 10 batches, and whether Keras warned its data ran out."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # 10 batches
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, "sigmoid")])
    model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    options = {"steps_per_epoch": 30, "epochs": 2, "callbacks": []}  # 60 steps asked for
    if data == "repeated":
        batches = batches.repeat()
    elif data == "unknown-length":  # (Keras warns once as it learns the length: healthy)
        batches, options = batches.filter(lambda x, y: True), {"epochs": 2, "callbacks": []}
    elif data == "arrays":  # 10 batches a pass, 30 asked for each epoch: 20 of 60 run
        batches, options = x, {"y": y, "batch_size": 16, **options}
    elif data == "a-little-short":
        options = {"steps_per_epoch": 12, "epochs": 1, "callbacks": []}  # 10 of 12 run
    elif data == "stopped":  # a callback ends the fit at its third step
        batches, options["callbacks"] = batches.repeat(), [_StopAtThirdBatch()]
    guard = Guard(options=Options.create(), raise_errors=False)
    callback = gradguard.GuardCallback()
    if entry == "callback":
        options["callbacks"].append(callback)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if entry == "run":
            with guard.instrument_process():
                model.fit(batches, verbose=0, **options)
        else:
            model.fit(batches, verbose=0, **options)
    ran_out = any("ran out of data" in str(w.message) for w in seen)
    report = guard.read(final=True) if entry == "run" else callback.report()
    return report.findings, ran_out


@pytest.mark.parametrize("entry", ["run", "callback"])
@pytest.mark.parametrize(
    "data", ["not-repeated", "arrays", "repeated", "unknown-length", "a-little-short", "stopped"]
)
def test_fit_whose_data_ran_out_is_found(entry, data):
    findings, warned = _fit(entry, data)
    # Keras' own warning: of the runs that warn, only the first two are cut short.
    assert warned == (data not in ("repeated", "stopped"))
    found = [f for f in findings if f.code == "data-exhausted"]
    assert bool(found) == (data in ("not-repeated", "arrays")), found
    if found:
        assert found[0].details == {"ran": 20, "asked": 60}, found[0].details  # 10 an epoch
        assert "fit ran 20 steps of the 60 asked for" in found[0].message
        repeat = {"run": data == "not-repeated", "callback": True}[entry]  # (data not known)
        assert (".repeat()" in found[0].message) == repeat
