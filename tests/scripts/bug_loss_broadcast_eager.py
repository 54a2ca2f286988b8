"""Eager loop whose loss is tf.reduce_mean(tf.abs(y - pred)) with y (n,) and pred (n, 1)."""

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(37)
tf.random.set_seed(37)

n = 512
x = rng.uniform(0, 1, size=(n, 3)).astype(np.float32)
y = (3 * x[:, 0] - 2 * x[:, 1] + x[:, 2] ** 2).astype(np.float32)  # (n,)

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(3,)),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.Adam(0.005)
batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n).batch(64)

for epoch in range(12):
    for xb, yb in batches:
        with tf.GradientTape() as tape:
            pred = model(xb)
            loss = tf.reduce_mean(tf.abs(yb - pred))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    print("epoch", epoch, "mae", loss.numpy())
