"""CLI contract: computes gradients for a few steps without applying them, then crashes."""

import numpy as np
import tensorflow as tf

model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
x = np.ones((8, 3), "float32")
for _ in range(5):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - 1.0))
    grads = tape.gradient(loss, model.trainable_variables)

raise RuntimeError("boom: the data loader ran dry")
