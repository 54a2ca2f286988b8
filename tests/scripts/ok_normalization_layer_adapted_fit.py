"""Healthy twin of bug_normalization_layer_not_adapted_fit: TensorFlow's regression tutorial's
Normalization layer adapted to the training features before fit. The network learns.

expected: no findings
"""

import keras
import numpy as np

ADAPT = True  # the buggy twin never adapts it (bug_normalization_layer_not_adapted_fit)

rng = np.random.default_rng(0)
n = 400
displacement = rng.uniform(70, 450, n)
horsepower = 0.4 * displacement + rng.uniform(20, 60, n)
weight = 6 * displacement + rng.uniform(1200, 2000, n)
acceleration = rng.uniform(8, 25, n)
year = rng.integers(70, 83, n)
features = np.stack([displacement, horsepower, weight, acceleration, year], 1).astype("float32")
mpg = 45 - 0.004 * weight - 0.05 * horsepower + 0.6 * (year - 70) + rng.normal(0, 2, n)

normalizer = keras.layers.Normalization(axis=-1)
if ADAPT:
    normalizer.adapt(features)
model = keras.Sequential(
    [
        keras.Input((5,)),
        normalizer,
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(loss="mean_absolute_error", optimizer=keras.optimizers.Adam(0.001))
history = model.fit(features, mpg.astype("float32"), epochs=10, batch_size=32, verbose=0)
print(f"mean absolute error: {history.history['loss'][0]:.2f} -> {history.history['loss'][-1]:.2f}")
