"""Healthy twin of bug_mixed_float16_loop_without_loss_scaling: the optimizer is wrapped in
keras.optimizers.LossScaleOptimizer and the tape differentiates opt.scale_loss(loss).

expected: no findings
"""

import keras
import numpy as np
import tensorflow as tf

keras.mixed_precision.set_global_policy("mixed_float16")
rng = np.random.default_rng(7)
keras.utils.set_random_seed(7)
x = rng.normal(size=(2560, 32)).astype("float32")
y = (3e-3 * np.tanh(x @ rng.normal(size=(32, 4096)) / 4)).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x[:2048], y[:2048])).shuffle(2048, seed=7).batch(64)

model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(4096, kernel_initializer="zeros"),
    ]
)
opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3))


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        pred = tf.cast(model(xb, training=True), tf.float32)
        loss = tf.reduce_mean(tf.square(yb - pred))
        scaled_loss = opt.scale_loss(loss)
    grads = tape.gradient(scaled_loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(8):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss))

pred = model(x[2048:]).numpy().astype("float32")
print("test R^2:", round(float(1 - np.mean((y[2048:] - pred) ** 2) / np.var(y[2048:])), 3))
