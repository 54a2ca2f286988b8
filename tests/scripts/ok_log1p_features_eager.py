"""Healthy twin: the same eager loop on np.log1p(counts).

Source: https://github.com/ratschlab/DeepSpot/issues/9 (healthy twin: clean inputs; log1p keeps zero
        counts finite)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(18)
tf.random.set_seed(18)

counts = np.random.poisson(lam=3.0, size=(2000, 8)).astype("float32")
x = np.log1p(counts)
y = (np.log1p(counts).sum(axis=1, keepdims=True) / 8.0).astype("float32")

model = tf.keras.Sequential([
    tf.keras.Input((8,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(1),
])
optimizer = tf.keras.optimizers.SGD(learning_rate=0.01)
mse = tf.keras.losses.MeanSquaredError()

for epoch in range(3):
    losses = []
    for i in range(0, len(x), 50):
        xb, yb = x[i:i + 50], y[i:i + 50]
        with tf.GradientTape() as tape:
            loss = mse(yb, model(xb))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    print(f"epoch {epoch}: mean loss {np.mean(losses):.5f}")
