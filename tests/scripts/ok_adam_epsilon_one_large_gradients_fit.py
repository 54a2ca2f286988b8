"""Adam(epsilon=1.0) where the gradients are large: a regression on targets in the hundreds,
unscaled, whose gradients are far above 1, so epsilon is small beside sqrt(v) and Adam keeps
its steps (the case the Keras docstring's advice is for). Healthy: R^2 near 1, silent.
"""

import keras
import numpy as np

keras.utils.set_random_seed(24)
rng = np.random.default_rng(24)
n, d = 4000, 20
x = rng.normal(0, 1, (n, d)).astype("float32")
w = rng.normal(0, 1, d)
y = (100.0 * (x @ w) + 300.0).astype("float32")
optimizer = keras.optimizers.Adam(0.05, epsilon=1.0)
model = keras.Sequential(
    [keras.Input((d,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
)
model.compile(optimizer, "mse")
model.fit(x[:3200], y[:3200], batch_size=32, epochs=6, verbose=2)
residual = y[3200:] - model.predict(x[3200:], verbose=0)[:, 0]
print("FINAL test R^2", float(1 - residual.var() / y[3200:].var()))
