"""Healthy twin: mixed_float16 on the same 16-bit readings, standardised, an explicit LossScaleOptimizer whose initial scale
(2**40) is far too high on purpose: the first ~25 steps overflow and are skipped while the scale
adapts, then training proceeds normally and the loss falls.

Sources: https://keras.io/api/mixed_precision/loss_scale_optimizer/ (dynamic loss scaling: steps whose
         gradients overflow are skipped and the scale is halved),
         https://www.tensorflow.org/guide/mixed_precision
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(23)
tf.random.set_seed(23)
keras.mixed_precision.set_global_policy("mixed_float16")

raw = np.random.randint(0, 65536, size=(1024, 32)).astype("float32")
y = (raw[:, :4].mean(axis=1, keepdims=True) > 32768).astype("float32")
x = ((raw - raw.mean(axis=0)) / raw.std(axis=0)).astype("float32")

model = keras.Sequential([
    keras.Input((32,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(1),
    keras.layers.Activation("sigmoid", dtype="float32"),
])
opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3), initial_scale=2.0 ** 40)
model.compile(optimizer=opt, loss="binary_crossentropy")
hist = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
print("final loss scale:", float(opt.dynamic_scale.numpy()))
