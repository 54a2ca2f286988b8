"""A Lambda(tf.round) "quantizing" the hidden layer: layers before it get no gradient."""

import numpy as np
import tensorflow as tf

np.random.seed(33)
tf.random.set_seed(33)

x = np.random.rand(800, 16).astype("float32")
y = (x[:, :8].mean(axis=1, keepdims=True) > 0.5).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(16,)),
        tf.keras.layers.Dense(32, activation="sigmoid"),
        tf.keras.layers.Lambda(lambda t: tf.round(t * 4.0) / 4.0),  # 2-bit activations
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.BinaryCrossentropy()


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(800).batch(32)
for epoch in range(4):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss))
