"""Healthy twin: the same eager mixed-precision loop, its loss scaled by hand with the loss
scaler's own scale (what optimizer.scale_loss does), so SGD's steps are the size they should be.

Source: https://keras.io/api/mixed_precision/loss_scale_optimizer/ (scale_loss multiplies the
        loss by dynamic_scale; apply divides the gradients by it)
expected: silent
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
keras.mixed_precision.set_global_policy("mixed_float16")
rng = np.random.default_rng(0)
prototypes = rng.normal(size=(10, 32)).astype("float32")
y = rng.integers(0, 10, size=3000)
x = (prototypes[y] + rng.normal(size=(3000, 32))).astype("float32")
model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
        keras.layers.Activation("linear", dtype="float32"),
    ]
)
optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.05, momentum=0.9))
optimizer.build(model.trainable_variables)  # (makes its dynamic_scale)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
        scaled = loss * tf.cast(optimizer.dynamic_scale, loss.dtype)
    grads = tape.gradient(scaled, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


data = tf.data.Dataset.from_tensor_slices((x[:2500], y[:2500])).shuffle(2500, seed=0).batch(64)
for _ in range(3):
    for xb, yb in data:
        train_step(xb, yb)
accuracy = np.mean(np.argmax(model(x[2500:]).numpy(), axis=1) == y[2500:])
print(f"held-out accuracy {accuracy:.3f}")
