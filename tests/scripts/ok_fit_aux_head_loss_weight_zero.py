"""Healthy two-output fit where the auxiliary output is switched off with loss_weights 0."""

import keras
import numpy as np

keras.utils.set_random_seed(35)

x = np.random.randn(960, 10).astype("float32")
y_main = (x[:, :2].sum(axis=1, keepdims=True) > 0).astype("float32")
y_aux = x[:, 2:3] * 0.5  # an auxiliary target we are not using in this run

inputs = keras.Input((10,))
h = keras.layers.Dense(32, activation="relu")(inputs)
main = keras.layers.Dense(1, activation="sigmoid", name="main")(h)
aux = keras.layers.Dense(1, name="aux")(h)
model = keras.Model(inputs, {"main": main, "aux": aux})

model.compile(
    optimizer="adam",
    loss={"main": "binary_crossentropy", "aux": "mse"},
    loss_weights={"main": 1.0, "aux": 0.0},
)
model.fit(x, {"main": y_main, "aux": y_aux}, batch_size=32, epochs=4, verbose=2)
