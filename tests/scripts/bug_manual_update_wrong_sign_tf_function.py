"""A hand-written update with the wrong sign: assign_add(lr * g) climbs the loss.

No optimizer: the weights are moved by hand, so only the losses the tape sees are left to judge;
the loss grows until it is NaN. (A from-scratch tutorial loop with assign_sub mistyped.)
"""

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(11)
x = rng.normal(size=(512, 6)).astype("float32")
y = (x @ rng.normal(size=(6, 1))).astype("float32")
model = tf.keras.Sequential(
    [tf.keras.Input((6,)), tf.keras.layers.Dense(16, activation="tanh"), tf.keras.layers.Dense(1)]
)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
    grads = tape.gradient(loss, model.trainable_variables)
    for variable, grad in zip(model.trainable_variables, grads):
        variable.assign_add(0.05 * grad)  # the bug: assign_sub descends
    return loss


dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
for _ in range(10):
    for xb, yb in dataset:
        loss = train_step(xb, yb)
print("loss", float(loss))
