"""Eager loop where the forward pass runs before the `with tf.GradientTape()` block."""

import numpy as np
import tensorflow as tf

np.random.seed(6)
tf.random.set_seed(6)

x_data = np.random.rand(300, 5).astype("float32")
y_data = (x_data.sum(axis=1, keepdims=True) > 2.5).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(10, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
loss_fn = tf.keras.losses.BinaryCrossentropy()
optimizer = tf.keras.optimizers.Adam()

for epoch in range(40):
    logits = model(x_data, training=True)
    with tf.GradientTape() as tape:
        loss_value = loss_fn(y_data, logits)
    grads = tape.gradient(loss_value, model.trainable_weights)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    if epoch % 10 == 0:
        print("epoch", epoch, "loss", float(loss_value))
