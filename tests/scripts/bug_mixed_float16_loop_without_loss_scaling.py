"""mixed_float16 custom GradientTape loop without loss scaling: the gradients underflow to exactly 0.

symptom: the loop runs, the loss does not move at all, R^2 stays at 0 (the model keeps predicting ~0).
why: the targets are small (a 4096-sample signal of amplitude ~3e-3) and the MSE is a mean over
64*4096 elements, so d loss / d pred ~ 2e-8, below the smallest float16 number (6e-8): the float16 part
of the graph gets gradients that are exactly 0. Keras' fit() would wrap the optimizer in a
LossScaleOptimizer; a hand-written loop must do it itself.
Source: https://www.tensorflow.org/guide/mixed_precision (section "Loss scaling"); no single issue URL.
expected: zero-gradient, naming float16 underflow and LossScaleOptimizer
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
opt = keras.optimizers.Adam(1e-3)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        pred = tf.cast(model(xb, training=True), tf.float32)
        loss = tf.reduce_mean(tf.square(yb - pred))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(8):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss))

pred = model(x[2048:]).numpy().astype("float32")
print("test R^2:", round(float(1 - np.mean((y[2048:] - pred) ** 2) / np.var(y[2048:])), 3))
