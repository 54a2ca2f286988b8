"""Healthy twin: the same BatchNorm classifier and eager loop, the last (partial) batch kept, no empty one.

Source: https://github.com/keras-team/keras/issues/11858 (healthy twin: no empty batch --
        range(ceil(n / bs)) -- and BatchNormalization's moving statistics stay finite)
expected: silent
"""
import math

import numpy as np
import tensorflow as tf

np.random.seed(19)
tf.random.set_seed(19)

n, bs = 1000, 64
x = np.random.randn(n, 10).astype("float32")
y = (x[:, :2].sum(axis=1) > 0).astype("float32")[:, None]

model = tf.keras.Sequential([
    tf.keras.Input((10,)),
    tf.keras.layers.Dense(32),
    tf.keras.layers.BatchNormalization(),
    tf.keras.layers.Activation("relu"),
    tf.keras.layers.Dense(1, activation="sigmoid"),
])
optimizer = tf.keras.optimizers.Adam(1e-3)
bce = tf.keras.losses.BinaryCrossentropy()

for epoch in range(4):
    losses = []
    for i in range(math.ceil(n / bs)):
        xb = x[i * bs:(i + 1) * bs]
        yb = y[i * bs:(i + 1) * bs]
        with tf.GradientTape() as tape:
            loss = bce(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    eval_out = model(x[:256], training=False)
    print(f"epoch {epoch}: train loss {np.mean(losses):.4f}  eval output NaN: {bool(np.isnan(eval_out.numpy()).any())}")
