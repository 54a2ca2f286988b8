"""Autoencoder loop that asks gradients for the encoder's weights only: the decoder never learns."""

import numpy as np
import tensorflow as tf

np.random.seed(40)
tf.random.set_seed(40)

latent_dim = 4
data = np.random.randn(1024, 3).astype("float32") @ np.random.randn(3, 24).astype("float32")

encoder = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(24,)),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(latent_dim),
    ],
    name="encoder",
)
decoder = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(latent_dim,)),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(24),
    ],
    name="decoder",
)
optimizer = tf.keras.optimizers.Adam(1e-3)


@tf.function
def train_step(batch):
    with tf.GradientTape() as tape:
        z = encoder(batch, training=True)
        reconstruction = decoder(z, training=True)
        loss = tf.reduce_mean(tf.square(batch - reconstruction))
    grads = tape.gradient(loss, encoder.trainable_weights)
    optimizer.apply_gradients(zip(grads, encoder.trainable_weights))
    return loss


ds = tf.data.Dataset.from_tensor_slices(data).shuffle(1024).batch(32)
for epoch in range(5):
    for batch in ds:
        loss = train_step(batch)
    print("epoch", epoch, "reconstruction loss", float(loss))
