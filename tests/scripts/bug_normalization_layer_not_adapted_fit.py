"""Reported symptom: "my regression DNN barely improves although it starts with a
Normalization layer". TensorFlow's regression tutorial's pattern with the
normalizer.adapt(train_features) call left out: Keras 3 builds the layer with mean 0 and
variance 1, an identity, so the network sees the raw features (weights in the thousands,
model years in the seventies): most of its first layer's ReLUs die, and its mean absolute
error ends at 7.4 against the adapted twin's 6.1.

Source: a pattern of user reports: keras.layers.Normalization() placed first in a Sequential
        model, never adapted (nor given mean= and variance=).
expected: normalization-not-adapted
"""

import keras
import numpy as np

ADAPT = False  # the healthy twin adapts it (ok_normalization_layer_adapted_fit)

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
