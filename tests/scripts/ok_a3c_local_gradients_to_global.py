"""Healthy: an A3C-style worker computes gradients on its local copy of the network and applies
them to the global network's variables (same shapes, another model), then copies the global
weights back. Gradients applied to variables they were not computed for, on purpose.

Source: the A3C pattern of tensorflow/models and many tutorials (local network, global optimizer).
expected: silent
"""

import numpy as np
import tensorflow as tf

np.random.seed(3)
tf.random.set_seed(3)
x = np.random.randn(256, 6).astype("float32")
y = (x @ np.random.randn(6, 1)).astype("float32")


def network():
    return tf.keras.Sequential(
        [
            tf.keras.Input((6,)),
            tf.keras.layers.Dense(16, activation="tanh"),
            tf.keras.layers.Dense(1),
        ]
    )


global_net, local_net = network(), network()
optimizer = tf.keras.optimizers.Adam(1e-2)
local_net.set_weights(global_net.get_weights())

for _ in range(100):
    batch = np.random.randint(0, 256, 32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(local_net(x[batch], training=True) - y[batch]))
    grads = tape.gradient(loss, local_net.trainable_variables)
    optimizer.apply_gradients(zip(grads, global_net.trainable_variables))
    local_net.set_weights(global_net.get_weights())  # the worker syncs with the global network
print("loss", float(loss))
