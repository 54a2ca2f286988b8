"""Healthy model.fit with Keras 3's built-in Adam(gradient_accumulation_steps=4)."""

import keras
import numpy as np

keras.utils.set_random_seed(24)

x = np.random.randn(1600, 10).astype("float32")
y = (x[:, :3] @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * np.random.randn(1600, 1)).astype("float32")

model = keras.Sequential(
    [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
# Effective batch of 64 on a machine that only fits 16 at a time.
model.compile(optimizer=keras.optimizers.Adam(1e-3, gradient_accumulation_steps=4), loss="mse")
model.fit(x, y, batch_size=16, epochs=2, verbose=2)
