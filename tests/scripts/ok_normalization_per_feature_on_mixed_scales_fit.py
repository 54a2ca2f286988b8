"""Healthy twin of bug_normalization_axis_none_on_mixed_scales_fit.py: Normalization() keeps
a mean and variance per column (axis=-1), so the ratios are standardized like the price.

Source: hunt23 p03 (its fix).
expected: silent
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
n = 2000
price = rng.uniform(10000, 90000, n)
ratios = rng.uniform(0, 1, (n, 4))
x = np.column_stack([price, ratios]).astype("float32")
y = (np.sin(3 * ratios[:, 0]) + ratios[:, 1] * ratios[:, 2] - ratios[:, 3] ** 2).astype("float32")
norm = keras.layers.Normalization()
norm.adapt(x[:1500])
model = keras.Sequential(
    [
        keras.Input((5,)),
        norm,
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(keras.optimizers.Adam(3e-3), "mse")
model.fit(x[:1500], y[:1500], batch_size=32, epochs=6, verbose=0)
print(f"test mse {model.evaluate(x[1500:], y[1500:], verbose=0):.4f}")
