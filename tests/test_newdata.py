"""A `fit` on other data than the model's last one starts the loss's trend again (`newdata`).

Under ``gradguard run`` (a process-wide guard reading `fit`'s arrays as it starts); the corpus
pair runs a curriculum script through the command line.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradguard import newdata
from gradguard.guarding import Guard
from gradguard.options import Options

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2400, 4)).astype("float32")
SIGNAL = X @ np.array([[1.0], [-1.0], [0.5], [0.0]], "float32")
NOISY = SIGNAL + 2.0 * RNG.normal(size=SIGNAL.shape).astype("float32")


def _fits(*fits):
    """`loss-not-decreasing` after `fit` calls ``(x, y, learning_rate)`` of one model, run-style."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(fits[0][2]), "mse")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        for x, y, rate in fits:
            model.optimizer.learning_rate.assign(rate)
            model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        found = guard.read(final=True).findings
    return [f for f in found if f.code == "loss-not-decreasing"]


@pytest.mark.parametrize("restart", [True, False])
def test_a_harder_data_set_after_an_easy_one_is_a_new_trend(restart, monkeypatch):
    # A curriculum: the exact targets first (the loss falls to about 0), then noisy ones (it
    # jumps to the noise's 4 and holds there, as it must). Without the rule, it is flagged.
    if not restart:
        monkeypatch.setattr(newdata.FitData, "given", lambda *args: None)
    found = _fits((X, SIGNAL, 0.05), (X[:1600], NOISY[:1600], 0.05))
    assert bool(found) is not restart, found


def test_the_same_arrays_fitted_again_keep_one_trend():
    # Two fits of 60 steps on the same arrays by a model that does not learn (a rate of 1e-9):
    # 120 steps of one trend, judged; each fit alone is too short to judge.
    (stuck,) = _fits((X[:960], NOISY[:960], 1e-9), (X[:960], NOISY[:960], 1e-9))
    assert "has not decreased" in stuck.message


def test_fingerprints_tell_arrays_apart_by_shape_dtype_and_rows():
    fingerprint = newdata._fingerprint
    assert fingerprint(X, SIGNAL) == fingerprint(X.copy(), SIGNAL.copy())
    assert fingerprint(X, SIGNAL) != fingerprint(X, NOISY)
    assert fingerprint(X, SIGNAL) != fingerprint(X[:1600], SIGNAL[:1600])
    assert fingerprint({"a": X}, None) == fingerprint({"a": X}, None)
    assert fingerprint(iter([X]), None) is None  # (a generator: not read)
