"""The twin of bug_loss_weights_listed_for_dict_outputs_fit: the loss weights given as a dict
keyed by output name, which Keras matches by name. main trains (test R^2 well above 0); aux,
weighted 0, is only monitored.
"""

import keras
import numpy as np

keras.utils.set_random_seed(35)
rng = np.random.default_rng(35)
x = rng.normal(size=(2000, 10)).astype("float32")
y_main = (x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) - 0.5 * x[:, 3] ** 2)[:, None].astype("float32")
y_aux = x.mean(axis=1, keepdims=True)

inputs = keras.Input((10,))
hidden = keras.layers.Dense(64, activation="relu")(inputs)
hidden = keras.layers.Dense(64, activation="relu")(hidden)
model = keras.Model(
    inputs,
    {"main": keras.layers.Dense(1, name="main")(hidden), "aux": keras.layers.Dense(1, name="aux")(hidden)},
)
model.compile("adam", loss={"main": "mse", "aux": "mse"}, loss_weights={"main": 1.0, "aux": 0.0})
model.fit(x[:1600], {"main": y_main[:1600], "aux": y_aux[:1600]}, batch_size=32, epochs=4, verbose=0)
predicted = model.predict(x[1600:], verbose=0)["main"]
print("main head test R^2:", round(float(1 - np.mean((predicted - y_main[1600:]) ** 2) / np.var(y_main[1600:])), 3))
