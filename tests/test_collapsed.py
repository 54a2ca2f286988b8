"""A classifier that predicts one class for every example once `fit` ends (`predictions-constant`).

Real `fit` calls under ``gradguard run``'s guard on an imbalanced 3-class task: an L2 factor of
0.1 and `Dropout(0.9)` (hunt22 p11, p12) leave every example at the majority class and are
found, each with its cause named; L2 of 1e-4, `Dropout(0.5)`, a learning rate too small to have
left the start (its classes still differ), a binary task's one sigmoid unit and the same bug fed
as a data set (not read again) are not.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard.guarding import Guard
from gradguard.options import Options

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(1200, 12)).astype("float32")
_W = _RNG.normal(size=(12, 3)).astype("float32")
_Y = np.argmax(
    _X @ _W / np.sqrt(12) + _RNG.normal(size=(1200, 3)) + np.array([1.0, 0.0, -0.5]), axis=1
)

_CASES = {  # case: (L2 factor, dropout rate, learning rate, the cause the message names)
    "l2-0.1": (0.1, 0.2, 1e-3, "kernel_regularizer (L2 0.1)"),
    "dropout-0.9": (1e-4, 0.9, 1e-3, "(rate 0.9), "),
    "l2-1e-4": (1e-4, 0.2, 1e-3, None),
    "dropout-0.5": (1e-4, 0.5, 1e-3, None),
    "learning-rate-1e-5": (1e-4, 0.2, 1e-5, None),
    "l2-0.1-data-set": (0.1, 0.2, 1e-3, None),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_a_classifier_left_at_the_majority_class_is_found(case):
    l2, rate, learning_rate, cause = _CASES[case]
    keras.utils.set_random_seed(0)
    reg = keras.regularizers.l2(l2)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(64, activation="relu", kernel_regularizer=reg),
            keras.layers.Dropout(rate),
            keras.layers.Dense(64, activation="relu", kernel_regularizer=reg),
            keras.layers.Dropout(rate),
            keras.layers.Dense(3, kernel_regularizer=reg),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(learning_rate), loss)
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        if case.endswith("data-set"):
            data = tf.data.Dataset.from_tensor_slices((_X, _Y)).batch(16)
            model.fit(data, epochs=4, verbose=0)
        else:
            model.fit(_X, _Y, batch_size=16, epochs=4, verbose=0)  # 300 updates
    found = [f for f in guard.read(final=True).findings if f.code == "predictions-constant"]
    predicted = np.argmax(model.predict(_X, verbose=0), axis=1)
    assert bool(found) == (cause is not None), found
    if found:  # (what the finding rests on, checked on every example)
        assert len(np.unique(predicted)) == 1 and cause in found[0].message
        assert found[0].details["loss"] >= 0.97 * found[0].details["chance_loss"]
    elif case.startswith(("l2-1e-4", "dropout-0.5")):
        assert np.mean(predicted == _Y) > np.bincount(_Y).max() / len(_Y) + 0.05


def test_one_sigmoid_unit_on_rare_positives_is_judged_by_its_loss_not_its_class():
    # A healthy imbalanced binary classifier may put every example below 0.5; its loss, well
    # below the labels' entropy, says it learned.
    y = (_X @ _W[:, 0] > 2.6).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(_X, y, batch_size=16, epochs=4, verbose=0)
    assert "predictions-constant" not in guard.read(final=True).codes()
