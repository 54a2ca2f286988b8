"""Reported symptom: in Keras 2 `trainable` was frozen into each model at compile() time; Keras 3 reads it
when the train function is first built. The flag is already False when discriminator.train_on_batch
runs for the first time, so Keras 3 warns "The model does not have any trainable weights" and the
discriminator is never trained: its weights stay at their initial values for the whole run while
the generator trains against a fixed random critic.

Sources: https://github.com/eriklindernoren/Keras-GAN/blob/master/gan/gan.py (the classic Keras GAN:
         discriminator.compile(); discriminator.trainable = False; combined.compile(); then
         discriminator.train_on_batch / combined.train_on_batch), run under Keras 3 as in
         https://github.com/keras-team/keras/issues/20474 ("The code works perfectly in other versions
         and it comes from a example of this repo ... cgan.py")
         https://github.com/0b01/SimGAN-Captcha/issues/4 ("when pre-train discriminator, loss keeps the
         same ... 0.693147"; "It's related to the order of model.trainable = False")
expected: variable-not-trained
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


optimizer = keras.optimizers.Adam(1e-3, 0.5)
discriminator = build_discriminator()
discriminator.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
generator = build_generator()
z = keras.Input(shape=(latent_dim,))
img = generator(z)
# For the combined model we will only train the generator
discriminator.trainable = False
validity = discriminator(img)
combined = keras.Model(z, validity)
combined.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(1e-3, 0.5))

valid = np.ones((batch_size, 1))
fake = np.zeros((batch_size, 1))
d_kernel0 = discriminator.layers[1].kernel.numpy().copy()
for epoch in range(80):
    idx = np.random.randint(0, X_train.shape[0], batch_size)
    imgs = X_train[idx]
    noise = np.random.normal(0, 1, (batch_size, latent_dim))
    gen_imgs = generator.predict(noise, verbose=0)
    d_loss_real = discriminator.train_on_batch(imgs, valid)
    d_loss_fake = discriminator.train_on_batch(gen_imgs, fake)
    d_loss = 0.5 * np.add(d_loss_real, d_loss_fake)
    noise = np.random.normal(0, 1, (batch_size, latent_dim))
    g_loss = combined.train_on_batch(noise, valid)
    if epoch % 20 == 0 or epoch == 79:
        print("%d [D loss: %f, acc.: %.2f%%] [G loss: %f]" % (epoch, d_loss[0], 100 * d_loss[1], float(np.ravel(g_loss)[0])))
print("discriminator kernel max change:", float(np.abs(discriminator.layers[1].kernel.numpy() - d_kernel0).max()))
r = np.linalg.norm(generator.predict(np.random.normal(0, 1, (1000, latent_dim)), verbose=0), axis=1)
print("generated radius mean %.3f std %.3f (real data: 1.000, 0.000)" % (r.mean(), r.std()))
