"""A resumed `fit` whose epoch-indexed learning-rate schedule starts over (`resumedfit`).

The wiring under `gradguard run` is the corpus pair `bug_fit_resumed_without_initial_epoch` /
`ok_fit_resumed_with_initial_epoch`; here, the rule on real models and optimizers.
"""

import keras
import numpy as np
import pytest

from gradguard import resumedfit

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = X[:, :1]


def decayed(epoch, lr):
    return 1e-2 * 0.5**epoch


@pytest.fixture(scope="module")
def resumed():
    """A model whose Adam trained 6 epochs under the scheduler (its rate decayed to 3.1e-4)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    scheduler = keras.callbacks.LearningRateScheduler(decayed)
    model.fit(X, Y, epochs=6, batch_size=16, verbose=0, callbacks=[scheduler])
    return model


@pytest.mark.parametrize(
    "case",
    [
        "without-initial-epoch",
        "with-initial-epoch",
        "fresh-optimizer",
        "fitted-again",
        "schedule-going-on",
        "no-scheduler",
    ],
)
def test_a_resumed_fit_restarting_its_schedule_is_found(resumed, case):
    model = resumed
    if case == "fresh-optimizer":  # a new stage: compiled anew
        model = keras.models.clone_model(resumed)
        model.compile(keras.optimizers.Adam(1e-4), "mse")
    schedule = (lambda epoch, lr: lr) if case == "schedule-going-on" else decayed
    callbacks = [] if case == "no-scheduler" else [keras.callbacks.LearningRateScheduler(schedule)]
    arguments = {"callbacks": callbacks, "initial_epoch": 6 if case == "with-initial-epoch" else 0}
    fits = resumedfit.ResumedFits()
    if case == "fitted-again":  # the script's own second fit numbers its epochs as it asks
        fits.given(model, {"callbacks": []})
    found = fits.given(model, arguments)
    if case != "without-initial-epoch":
        assert found == [], found
        return
    (restarted,) = found
    assert restarted.code == "checkpoint-optimizer-config-changed" and restarted.step == -1
    assert "initial_epoch=0" in restarted.message and "12 updates" in restarted.message
    assert "32x" in restarted.message, restarted.message  # 1e-2 against epoch 5's 1e-2 * 0.5**5
