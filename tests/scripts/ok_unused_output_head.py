"""Healthy two-head model where phase 1 trains only the main head; the aux head is unused."""

import numpy as np
import tensorflow as tf

np.random.seed(10)
tf.random.set_seed(10)

inputs = tf.keras.Input(shape=(12,))
trunk = tf.keras.layers.Dense(32, activation="relu", name="trunk")(inputs)
main_out = tf.keras.layers.Dense(1, name="main_head")(trunk)
aux_out = tf.keras.layers.Dense(3, name="aux_head")(trunk)  # trained later, on another task
model = tf.keras.Model(inputs, [main_out, aux_out])

x = np.random.randn(960, 12).astype("float32")
y = (x[:, :3].sum(axis=1, keepdims=True) ** 2 / 3.0).astype("float32")

optimizer = tf.keras.optimizers.Adam(2e-3)
mse = tf.keras.losses.MeanSquaredError()


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        main_pred, _ = model(xb, training=True)
        loss = mse(yb, main_pred)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(
        (g, v) for g, v in zip(grads, model.trainable_variables) if g is not None
    )
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(960).batch(32)
for epoch in range(5):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss))
