"""Reported symptom: with the mixed_float16 policy, raw 16-bit sensor/image values (0..65535, read from
uint16 files and not rescaled) are cast to float16 inside the first layer; everything above 65504
becomes inf, the loss is nan on every batch, the LossScaleOptimizer that fit() wraps around Adam skips
every single step, and the weights never change although fit() runs to the end. The same script in
float32 trains.

Sources: https://github.com/keras-team/keras/issues/16100 (maintainer: "if gradients are still
         nonfinite when the loss scale reaches 1, every step will be skipped and training will not
         progress. This behavior is not great")
         https://github.com/keras-team/keras/issues/16552 ("Mix precision leads to nan loss": "Model
         works well in float32")
expected: non-finite
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(23)
tf.random.set_seed(23)
keras.mixed_precision.set_global_policy("mixed_float16")

raw = np.random.randint(0, 65536, size=(1024, 32)).astype("uint16")  # raw 16-bit readings
x = raw.astype("float32")  # not standardised
y = (x[:, :4].mean(axis=1, keepdims=True) > 32768).astype("float32")

model = keras.Sequential([
    keras.Input((32,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(1),
    keras.layers.Activation("sigmoid", dtype="float32"),
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
k0 = model.layers[0].kernel.numpy().copy()
hist = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
print("optimizer:", type(model.optimizer).__name__)
print("loss per epoch:", hist.history["loss"])
print("first kernel max change:", float(np.abs(model.layers[0].kernel.numpy() - k0).max()))
