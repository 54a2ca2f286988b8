"""Healthy twin: the same loop making a plain SGD (no momentum) for every update. SGD keeps no
state between updates, so a new one each time updates exactly as one made before the loop
(wasteful, not wrong): nothing to report.

expected: no findings
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
x = rng.normal(size=(512, 8)).astype("float32")
y = (x @ rng.normal(size=(8, 1))).astype("float32")
model = keras.Sequential(
    [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
)


def train(inputs, targets):
    optimizer = keras.optimizers.SGD(1e-2)  # made anew, but plain SGD keeps no state
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(targets - model(inputs, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for step in range(120):
    i = (step * 32) % 512
    loss = train(x[i : i + 32], y[i : i + 32])
print(f"final loss {float(loss):.4f}")
