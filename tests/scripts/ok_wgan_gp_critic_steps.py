"""Healthy twin (GANs, two optimizers, nested tapes): the critic is trained 5 times per generator step,
the generator's tape reads the critic, the gradient penalty differentiates the critic with respect
to its input inside the outer tape. Everything is legitimate.

Sources: https://keras.io/examples/generative/wgan_gp/ (WGAN-GP: d_steps critic updates per generator
         update, gradient penalty computed with a GradientTape nested inside the critic's tape)
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(29)
tf.random.set_seed(29)

LATENT, DIM, BATCH, D_STEPS, GP_WEIGHT = 4, 2, 64, 5, 10.0
data = (np.random.randn(8192, DIM) * [0.5, 2.0] + [1.0, -1.0]).astype("float32")

generator = keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(DIM)])
critic = keras.Sequential([keras.Input((DIM,)), keras.layers.Dense(32), keras.layers.LeakyReLU(0.2), keras.layers.Dense(1)])
g_opt = keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9)
d_opt = keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9)


def gradient_penalty(real, fake):
    alpha = tf.random.uniform([tf.shape(real)[0], 1], 0.0, 1.0)
    interpolated = real + alpha * (fake - real)
    with tf.GradientTape() as gp_tape:
        gp_tape.watch(interpolated)
        pred = critic(interpolated, training=True)
    grads = gp_tape.gradient(pred, [interpolated])[0]
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=1) + 1e-12)
    return tf.reduce_mean((norm - 1.0) ** 2)


@tf.function
def train_step(real):
    for _ in range(D_STEPS):
        z = tf.random.normal([BATCH, LATENT])
        with tf.GradientTape() as tape:
            fake = generator(z, training=True)
            d_cost = tf.reduce_mean(critic(fake, training=True)) - tf.reduce_mean(critic(real, training=True))
            d_loss = d_cost + GP_WEIGHT * gradient_penalty(real, fake)
        d_grads = tape.gradient(d_loss, critic.trainable_variables)
        d_opt.apply_gradients(zip(d_grads, critic.trainable_variables))
    z = tf.random.normal([BATCH, LATENT])
    with tf.GradientTape() as tape:
        g_loss = -tf.reduce_mean(critic(generator(z, training=True), training=True))
    g_grads = tape.gradient(g_loss, generator.trainable_variables)
    g_opt.apply_gradients(zip(g_grads, generator.trainable_variables))
    return d_loss, g_loss


sample = generator(tf.random.normal([2000, LATENT])).numpy()
print(f"start: sample mean {sample.mean(0).round(2)} std {sample.std(0).round(2)}  (data: mean [1, -1], std [0.5, 2])")
ds = tf.data.Dataset.from_tensor_slices(data).shuffle(8192, seed=29).batch(BATCH, drop_remainder=True)
for epoch in range(3):
    for real in ds:
        d_loss, g_loss = train_step(real)
    sample = generator(tf.random.normal([2000, LATENT])).numpy()
    print(f"epoch {epoch}: d {float(d_loss):.3f} g {float(g_loss):.3f}  sample mean {sample.mean(0).round(2)} std {sample.std(0).round(2)}")
