"""Healthy twin of bug_regression_targets_in_thousands_adam_fit: targets standardized with the
training mean and std (and predictions mapped back before scoring).

expected: no findings
"""

import keras
import numpy as np

rng = np.random.default_rng(8)
keras.utils.set_random_seed(8)
x = rng.normal(size=(1800, 8)).astype("float32")
y = (5000 + 1500 * np.tanh(x @ rng.normal(size=(8, 1)) / 2)).astype("float32")

mu, sd = y[:1600].mean(), y[:1600].std()
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
model.compile(keras.optimizers.Adam(1e-3), "mse")
hist = model.fit(x[:1600], (y[:1600] - mu) / sd, batch_size=64, epochs=8, verbose=0)
print("epoch losses:", [f"{v:.4g}" for v in hist.history["loss"]])
pred = model.predict(x[1600:], verbose=0) * sd + mu
print("test R^2:", round(float(1 - np.mean((y[1600:] - pred) ** 2) / np.var(y[1600:])), 3))
