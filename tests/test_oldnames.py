"""tf.keras 2 names set on a Keras 3 optimizer (`oldnames`, `optimizer-setting-ignored`): found
for ``optimizer.lr = ...`` in a learning-rate callback during a real `fit` and on `TrainStep`'s
optimizer; silent for ``optimizer.learning_rate = ...`` and for a user's optimizer class that
keeps its own ``lr``."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import gradguard
from gradguard import oldnames

CODE = "optimizer-setting-ignored"


class StepDecay(keras.callbacks.Callback):
    """A tf.keras 2 style step decay, setting the rate by `name`."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def on_epoch_begin(self, epoch, logs=None):
        setattr(self.model.optimizer, self.name, 0.03 * 0.1 ** (epoch // 2))


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, x[:, :1] * 2.0


@pytest.mark.parametrize("name", ["lr", "learning_rate"])
def test_a_callback_setting_lr_is_told_the_rate_never_moved(name):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.03, momentum=0.9), "mse")
    guard = gradguard.GuardCallback(every=2)
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[StepDecay(name), guard])
    found = [f for f in guard.report().findings if f.code == CODE]
    assert bool(found) == (name == "lr"), str(guard.report())
    if found:
        assert "optimizer.lr was set (to 0.003" in found[0].message
        assert "its learning rate is 0.03" in found[0].message
        assert "optimizer.learning_rate = new_rate" in found[0].message


def test_train_step_reads_its_optimizer_and_a_users_class_is_not_judged():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(1e-3)
    step = gradguard.TrainStep(model, optimizer, "mse")
    step(*_data())
    optimizer.decay = 1e-4  # tf.keras 2's per-step decay
    assert [f.details["attribute"] for f in step.report().findings if f.code == CODE] == ["decay"]

    class OwnRate(keras.optimizers.SGD):  # a user's class may read its own `lr`
        pass

    own = OwnRate(0.1)
    own.lr = 0.01
    assert oldnames.ignored_settings(own, 0) == []
    inner = keras.optimizers.SGD(0.1)
    inner.lr = 0.01
    scaled = keras.optimizers.LossScaleOptimizer(inner)
    assert [f.details["optimizer"] for f in oldnames.ignored_settings(scaled, 0)] == ["SGD"]
