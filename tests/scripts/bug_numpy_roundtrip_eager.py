"""Eager loop whose loss is computed in NumPy from model(x).numpy(), cutting the tape."""

import numpy as np
import tensorflow as tf

np.random.seed(2)
tf.random.set_seed(2)

X = np.linspace(-2, 2, 400).reshape(-1, 1).astype(np.float32)
Y = (X**3 - X + 0.1 * np.random.randn(400, 1)).astype(np.float32)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(32, activation="tanh"),
        tf.keras.layers.Dense(32, activation="tanh"),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.Adam(0.01)

for step in range(100):
    idx = np.random.choice(len(X), 64)
    with tf.GradientTape() as tape:
        y_hat = model(X[idx]).numpy()
        loss = tf.constant(np.mean((y_hat - Y[idx]) ** 2))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    if step % 20 == 0:
        print(step, float(loss))
