"""Reported symptom: the training loss looks normal, but BatchNormalization's moving mean/variance become
NaN because one step ran on an empty batch; inference (training=False) then outputs NaN everywhere.
Here the empty batch comes from the classic slicing loop `for i in range(n // bs + 1)` when n is a
multiple of bs.

Sources: https://github.com/keras-team/keras/issues/11858 and
         https://github.com/tensorflow/tensorflow/issues/24320 ("BatchNormalization produces NaN
         weights without NaN loss": when the dataset size is not a multiple of the batch size, one
         replica receives an empty batch)
         https://github.com/tensorflow/tensorflow/issues/41657 (comment: "sometimes an empty batch is
         created ... this can create a divide-by-zero error")
expected: non-finite
"""
import numpy as np
import tensorflow as tf

np.random.seed(19)
tf.random.set_seed(19)

n, bs = 1024, 64
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
    for i in range(n // bs + 1):
        xb = x[i * bs:(i + 1) * bs]
        yb = y[i * bs:(i + 1) * bs]
        with tf.GradientTape() as tape:
            loss = bce(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if len(xb):
            losses.append(float(loss))
    eval_out = model(x[:256], training=False)
    print(f"epoch {epoch}: train loss {np.mean(losses):.4f}  eval output NaN: {bool(np.isnan(eval_out.numpy()).any())}")
print("moving_mean has NaN:", bool(np.isnan(model.layers[1].moving_mean.numpy()).any()))
