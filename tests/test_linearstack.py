"""Hidden Dense layers with no activation (`linearstack`, `activation-missing`): found by
`TrainStep` and by `fit` under the guard for a model that is one linear map; silent for hidden
activations (given to the layer, or as a layer of their own), a linear bottleneck, a single
layer and any layer whose effect is not judged."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import gradguard
from gradguard import linearstack

CODE = "activation-missing"
Dense = keras.layers.Dense


def _model(*layers, inputs: int = 6) -> keras.Model:
    return keras.Sequential([keras.Input((inputs,)), *layers])


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(96, 6)).astype("float32")
    return x, (np.sin(2 * x[:, :1]) * x[:, 1:2]).astype("float32")


@pytest.mark.parametrize("activation", [None, "relu"])
def test_train_step_names_the_hidden_layers_of_a_linear_model(activation):
    keras.utils.set_random_seed(0)
    model = _model(Dense(16, activation, name="h1"), Dense(16, activation, name="h2"), Dense(1))
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-3), "mse")
    x, y = _data()
    step(x, y)
    found = [f for f in step.report().findings if f.code == CODE]
    assert bool(found) == (activation is None), str(step.report())
    if found:
        assert "hidden Dense layers (h1, h2; 16 units)" in found[0].message
        assert found[0].details["layers"] == ["h1", "h2"]


@pytest.mark.parametrize("activation", [None, "relu"])
def test_fit_under_the_guard_tells_a_linear_model(activation):
    keras.utils.set_random_seed(0)
    model = _model(Dense(16, activation), Dense(3, activation="softmax"))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    callback = gradguard.GuardCallback(every=4)
    x, _ = _data()
    model.fit(x, (x[:, 0] > 0).astype("int32"), batch_size=32, verbose=0, callbacks=[callback])
    assert (CODE in callback.report().codes()) == (activation is None), str(callback.report())


@pytest.mark.parametrize(
    "layers, found",
    [
        ([Dense(16), Dense(16), Dense(1)], True),
        ([Dense(16), keras.layers.BatchNormalization(), Dense(1, "sigmoid")], True),
        ([Dense(16), keras.layers.Dropout(0.2), Dense(16), Dense(1)], True),
        ([Dense(16, "relu"), Dense(1)], False),
        ([Dense(16), keras.layers.Activation("relu"), Dense(1)], False),
        ([Dense(16), keras.layers.LeakyReLU(), Dense(1)], False),
        ([Dense(16), keras.layers.LayerNormalization(), Dense(1)], False),
        ([Dense(16), keras.layers.Lambda(lambda t: t**2), Dense(1)], False),
        ([Dense(1)], False),
        ([Dense(2), Dense(6)], False),  # 6 -> 2 -> 6: a linear autoencoder's bottleneck
    ],
    ids=[
        "two-hidden",
        "batch-norm-between",
        "dropout-between",
        "relu-hidden",
        "activation-layer",
        "leaky-relu-layer",
        "layer-norm",
        "lambda",
        "one-layer",
        "bottleneck",
    ],
)
def test_which_stacks_are_one_linear_map(layers, found):
    assert (linearstack.collapsed(_model(*layers), step=0) is not None) == found


def test_a_functional_model_is_judged_by_its_operations():
    inputs = keras.Input((6,))
    linear = keras.Model(inputs, Dense(1)(Dense(16)(Dense(16)(inputs))))
    assert linearstack.collapsed(linear, 0) is not None
    hidden = keras.ops.relu(Dense(16)(inputs))  # an op of the model's own, not a layer
    assert linearstack.collapsed(keras.Model(inputs, Dense(1)(hidden)), 0) is None


def test_a_subclassed_model_is_not_judged():
    # hunt15's healthy_subclassed: the activation is applied in call(), not by a layer.
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = Dense(16), Dense(1)

        def call(self, x):
            return self.out(keras.ops.relu(self.hidden(x)))

    net = Net()
    net(np.zeros((1, 6), np.float32))
    assert linearstack.collapsed(net, 0) is None


def test_a_dense_subclass_or_a_convolution_is_not_judged():
    class Scaled(Dense):
        def call(self, inputs):
            return super().call(inputs) ** 2

    assert linearstack.collapsed(_model(Scaled(16), Dense(1)), 0) is None
    conv = keras.Sequential(
        [keras.Input((8, 1)), keras.layers.Conv1D(4, 3), keras.layers.Flatten(), Dense(8), Dense(1)]
    )
    assert linearstack.collapsed(conv, 0) is None
