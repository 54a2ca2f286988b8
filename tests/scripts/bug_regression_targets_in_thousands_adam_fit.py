"""Regression on raw targets in the thousands (house-price-like, ~5000 +- 1500) with Adam(1e-3) in fit().

symptom: the MSE is ~2.7e7 and barely moves in 200 steps; test R^2 is far below 0 (the model predicts ~0).
why: Adam moves each weight by ~lr=1e-3 per step whatever the gradient, so the output (initially ~0)
can climb only a few units per step toward a mean of 5000; the model never even reaches the mean.
The fix is to standardize the targets (or the output bias/scale).
Source: no single URL (frequent StackOverflow "Keras regression loss huge and not decreasing").
expected: loss-not-decreasing, naming the data's scale (a first gradient norm of 1.9e4,
          before any update)
"""

import keras
import numpy as np

rng = np.random.default_rng(8)
keras.utils.set_random_seed(8)
x = rng.normal(size=(1800, 8)).astype("float32")
y = (5000 + 1500 * np.tanh(x @ rng.normal(size=(8, 1)) / 2)).astype("float32")

model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
model.compile(keras.optimizers.Adam(1e-3), "mse")
hist = model.fit(x[:1600], y[:1600], batch_size=64, epochs=8, verbose=0)
print("epoch losses:", [f"{v:.4g}" for v in hist.history["loss"]])
pred = model.predict(x[1600:], verbose=0)
print("test R^2:", round(float(1 - np.mean((y[1600:] - pred) ** 2) / np.var(y[1600:])), 3))
