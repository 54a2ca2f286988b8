"""Healthy twin under Keras 3: the same small GAN trained with train_on_batch, the discriminator
unfrozen for its own steps and frozen for the generator's steps; two optimizers, each model trained.

Sources: https://github.com/0b01/SimGAN-Captcha/issues/1 (the toggling pattern:
         discriminator.trainable = True; discriminator.train_on_batch(...);
         discriminator.trainable = False; combined.train_on_batch(...))
         https://github.com/osh/KerasGAN (make_trainable(discriminator, True/False))
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

np.random.seed(27)
tf.random.set_seed(27)

latent_dim, data_dim, batch_size = 8, 2, 64
angles = np.random.uniform(0, 2 * np.pi, size=4096)
X_train = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")


def build_generator():
    z = keras.Input((latent_dim,))
    h = layers.Dense(32)(z)
    h = layers.LeakyReLU(0.2)(h)
    out = layers.Dense(data_dim, activation="tanh")(h)
    return keras.Model(z, out)


def build_discriminator():
    x = keras.Input((data_dim,))
    h = layers.Dense(32)(x)
    h = layers.LeakyReLU(0.2)(h)
    validity = layers.Dense(1, activation="sigmoid")(h)
    return keras.Model(x, validity)


def make_trainable(net, val):
    net.trainable = val
    for layer in net.layers:
        layer.trainable = val


discriminator = build_discriminator()
discriminator.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(1e-3, 0.5), metrics=["accuracy"])
generator = build_generator()
z = keras.Input(shape=(latent_dim,))
combined = keras.Model(z, discriminator(generator(z)))
make_trainable(discriminator, False)
combined.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(1e-3, 0.5))

valid = np.ones((batch_size, 1))
fake = np.zeros((batch_size, 1))
for epoch in range(80):
    idx = np.random.randint(0, X_train.shape[0], batch_size)
    imgs = X_train[idx]
    noise = np.random.normal(0, 1, (batch_size, latent_dim))
    gen_imgs = generator.predict(noise, verbose=0)
    make_trainable(discriminator, True)
    d_loss_real = discriminator.train_on_batch(imgs, valid)
    d_loss_fake = discriminator.train_on_batch(gen_imgs, fake)
    d_loss = 0.5 * np.add(d_loss_real, d_loss_fake)
    make_trainable(discriminator, False)
    noise = np.random.normal(0, 1, (batch_size, latent_dim))
    g_loss = combined.train_on_batch(noise, valid)
    if epoch % 20 == 0 or epoch == 79:
        print("%d [D loss: %f, acc.: %.2f%%] [G loss: %f]" % (epoch, d_loss[0], 100 * d_loss[1], float(np.ravel(g_loss)[0])))
r = np.linalg.norm(generator.predict(np.random.normal(0, 1, (1000, latent_dim)), verbose=0), axis=1)
print("generated radius mean %.3f std %.3f (real data: 1.000, 0.000)" % (r.mean(), r.std()))
