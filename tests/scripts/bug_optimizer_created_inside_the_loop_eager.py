"""Reported symptom: Adam (or Adagrad) made inside the training function, so every update gets a
fresh optimizer: its moment estimates and step count start from zero each time, every update is
about lr * sign(gradient), and the loss is worse than with one optimizer made before the loop.
(Eager only: a tf.function refuses to create the optimizer's variables twice.)

Source: https://github.com/tensorflow/tensorflow/issues/29675 ("Adam/Adagrad gives different
        derivatives when initializing globaly and localy")
expected: optimizer-recreated
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
    optimizer = keras.optimizers.Adam(1e-2)  # made anew for every update
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(targets - model(inputs, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for step in range(120):
    i = (step * 32) % 512
    loss = train(x[i : i + 32], y[i : i + 32])
print(f"final loss {float(loss):.4f}")
