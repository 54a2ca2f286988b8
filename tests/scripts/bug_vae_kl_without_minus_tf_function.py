"""A VAE whose KL term lost its minus: 0.5 * sum(1 + log_var - mu^2 - exp(log_var)) is -KL, so
minimizing recon + it maximizes the KL. The posterior means run away, the loss goes below 0 and
falls by orders of magnitude (8 to -1e6 in four epochs), then the gradients explode.
As in "The loss of VAE is negative. Is it normal?" (stats.stackexchange.com/questions/630079).
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(24)
rng = np.random.default_rng(24)
prototypes = (rng.random((4, 16)) > 0.5).astype("float32")
noisy = prototypes[rng.integers(0, 4, 2048)] * 0.9 + rng.normal(0, 0.05, (2048, 16))
x = np.clip(noisy, 0, 1).astype("float32")
latent = 2
encoder = keras.Sequential(
    [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(2 * latent)]
)
decoder = keras.Sequential(
    [
        keras.Input((latent,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="sigmoid"),
    ]
)
optimizer = keras.optimizers.Adam(1e-3)
variables = encoder.trainable_variables + decoder.trainable_variables


@tf.function
def train_step(batch):
    with tf.GradientTape() as tape:
        mean, log_var = tf.split(encoder(batch, training=True), 2, axis=1)
        z = mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean))
        decoded = decoder(z, training=True)
        recon = tf.reduce_mean(tf.reduce_sum(keras.losses.binary_crossentropy(
            batch[..., None], decoded[..., None]), axis=1))
        kl = tf.reduce_mean(0.5 * tf.reduce_sum(1 + log_var - tf.square(mean) - tf.exp(log_var), 1))
        loss = recon + kl
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss


dataset = tf.data.Dataset.from_tensor_slices(x).shuffle(2048, seed=24).batch(64)
for epoch in range(5):
    for batch in dataset:
        loss = train_step(batch)
    print(f"epoch {epoch} loss {float(loss):.4g}")
