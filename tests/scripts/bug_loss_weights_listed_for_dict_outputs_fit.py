"""Outputs written as a dict {"main", "aux"}, loss_weights as a list [1.0, 0.0] meaning "train
main, only monitor aux". Keras orders a dict's outputs by sorted key (model.output_names is
['aux', 'main']) and matches lists in that order: aux gets weight 1, main weight 0, and main
never trains (its test R^2 stays below 0) while the total loss falls as usual.
Reported as keras-team/keras#20596 and #20346 (outputs and losses matched in sorted order).
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
model.compile("adam", loss=["mse", "mse"], loss_weights=[1.0, 0.0])
model.fit(x[:1600], {"main": y_main[:1600], "aux": y_aux[:1600]}, batch_size=32, epochs=4, verbose=0)
predicted = model.predict(x[1600:], verbose=0)["main"]
print("main head test R^2:", round(float(1 - np.mean((predicted - y_main[1600:]) ** 2) / np.var(y_main[1600:])), 3))
