"""Healthy model.fit under the mixed_float16 policy: Keras wraps the optimizer in loss scaling."""

import keras
import numpy as np

keras.utils.set_random_seed(22)
keras.mixed_precision.set_global_policy("mixed_float16")

x = np.random.randn(960, 20).astype("float32")
y = (x @ np.random.randn(20, 1) * 4.0).astype("float32")

inputs = keras.Input(shape=(20,))
h = keras.layers.Dense(64, activation="relu")(inputs)
h = keras.layers.Dense(64, activation="relu")(h)
h = keras.layers.Dense(1)(h)
outputs = keras.layers.Activation("linear", dtype="float32")(h)
model = keras.Model(inputs, outputs)

model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
print(type(model.optimizer).__name__)
model.fit(x, y, batch_size=32, epochs=5, verbose=2)
print("loss scale", float(model.optimizer.dynamic_scale))
