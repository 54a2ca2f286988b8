"""Healthy GAN (DCGAN tutorial style): generator and discriminator, each with its own Adam."""

import numpy as np
import tensorflow as tf

np.random.seed(7)
tf.random.set_seed(7)

noise_dim = 8
# "Real" data: points on a ring.
angles = np.random.uniform(0, 2 * np.pi, size=2048)
real_points = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")


def make_generator_model():
    return tf.keras.Sequential(
        [
            tf.keras.layers.Dense(32, activation="relu", input_shape=(noise_dim,)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(2),
        ]
    )


def make_discriminator_model():
    return tf.keras.Sequential(
        [
            tf.keras.layers.Dense(32, input_shape=(2,)),
            tf.keras.layers.LeakyReLU(0.2),
            tf.keras.layers.Dense(32),
            tf.keras.layers.LeakyReLU(0.2),
            tf.keras.layers.Dense(1),
        ]
    )


generator = make_generator_model()
discriminator = make_discriminator_model()
cross_entropy = tf.keras.losses.BinaryCrossentropy(from_logits=True)


def discriminator_loss(real_output, fake_output):
    real_loss = cross_entropy(tf.ones_like(real_output), real_output)
    fake_loss = cross_entropy(tf.zeros_like(fake_output), fake_output)
    return real_loss + fake_loss


def generator_loss(fake_output):
    return cross_entropy(tf.ones_like(fake_output), fake_output)


generator_optimizer = tf.keras.optimizers.Adam(1e-3, beta_1=0.5)
discriminator_optimizer = tf.keras.optimizers.Adam(1e-3, beta_1=0.5)

BATCH_SIZE = 64


@tf.function
def train_step(points):
    noise = tf.random.normal([BATCH_SIZE, noise_dim])

    with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
        generated = generator(noise, training=True)

        real_output = discriminator(points, training=True)
        fake_output = discriminator(generated, training=True)

        gen_loss = generator_loss(fake_output)
        disc_loss = discriminator_loss(real_output, fake_output)

    gradients_of_generator = gen_tape.gradient(gen_loss, generator.trainable_variables)
    gradients_of_discriminator = disc_tape.gradient(disc_loss, discriminator.trainable_variables)

    generator_optimizer.apply_gradients(zip(gradients_of_generator, generator.trainable_variables))
    discriminator_optimizer.apply_gradients(
        zip(gradients_of_discriminator, discriminator.trainable_variables)
    )
    return gen_loss, disc_loss


dataset = (
    tf.data.Dataset.from_tensor_slices(real_points)
    .shuffle(2048)
    .batch(BATCH_SIZE, drop_remainder=True)
)
for epoch in range(6):
    for batch in dataset:
        g, d = train_step(batch)
    print(f"epoch {epoch}: gen {float(g):.3f} disc {float(d):.3f}")
