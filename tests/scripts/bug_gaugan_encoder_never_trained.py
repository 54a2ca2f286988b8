"""Reported symptom: in the GauGAN training step (also the keras.io GauGAN example), the image encoder
produces mean/variance, the sampled latent goes into the generator, the KL term is part of the
generator loss, but the generator optimizer is applied to combined_model.trainable_variables only;
the encoder's variables are read inside the tape, never differentiated, never updated.
Small vector version: "images" are 16-d vectors, the segmentation map a 4-d one-hot code.

Sources: https://github.com/soumik12345/tf2_gans/issues/14 ("gaugan encoder not training":
         "the encoder is not part of the combined_model"), fixed in
         https://github.com/soumik12345/tf2_gans/pull/15 (add self.encoder.trainable_variables)
expected: variable-not-trained
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(3)
tf.random.set_seed(3)

IMG, SEG, LATENT, BATCH = 16, 4, 8, 64
centers = np.random.randn(SEG, IMG).astype("float32") * 2.0
labels = np.random.randint(0, SEG, size=4096)
segs = np.eye(SEG, dtype="float32")[labels]
images = (centers[labels] + 0.3 * np.random.randn(4096, IMG)).astype("float32")


def build_encoder():
    inp = keras.Input((IMG,))
    h = keras.layers.Dense(32, activation="relu")(inp)
    mean = keras.layers.Dense(LATENT)(h)
    variance = keras.layers.Dense(LATENT)(h)
    return keras.Model(inp, [mean, variance], name="encoder")


def build_generator():
    z = keras.Input((LATENT,))
    s = keras.Input((SEG,))
    h = keras.layers.Concatenate()([z, s])
    h = keras.layers.Dense(32, activation="relu")(h)
    out = keras.layers.Dense(IMG)(h)
    return keras.Model([z, s], out, name="generator")


def build_discriminator():
    x = keras.Input((IMG,))
    s = keras.Input((SEG,))
    h = keras.layers.Concatenate()([x, s])
    h = keras.layers.Dense(32)(h)
    h = keras.layers.LeakyReLU(0.2)(h)
    out = keras.layers.Dense(1)(h)
    return keras.Model([x, s], out, name="discriminator")


class GauGAN(keras.Model):
    def __init__(self):
        super().__init__()
        self.encoder = build_encoder()
        self.generator = build_generator()
        self.discriminator = build_discriminator()
        # the generator is trained through a "combined" model that only wraps generator (+ frozen D)
        z = keras.Input((LATENT,))
        s = keras.Input((SEG,))
        self.combined_model = keras.Model([z, s], self.generator([z, s]))
        self.generator_optimizer = keras.optimizers.Adam(1e-3, beta_1=0.5)
        self.discriminator_optimizer = keras.optimizers.Adam(1e-3, beta_1=0.5)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)

    def sample(self, mean, variance):
        eps = tf.random.normal(tf.shape(mean))
        return mean + tf.exp(0.5 * variance) * eps

    @tf.function
    def train_discriminator(self, latent, seg, real):
        fake = self.generator([latent, seg])
        with tf.GradientTape() as tape:
            pred_fake = self.discriminator([fake, seg])
            pred_real = self.discriminator([real, seg])
            loss = self.bce(tf.zeros_like(pred_fake), pred_fake) + self.bce(tf.ones_like(pred_real), pred_real)
        grads = tape.gradient(loss, self.discriminator.trainable_variables)
        self.discriminator_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        return loss

    @tf.function
    def train_generator(self, seg, real):
        with tf.GradientTape() as tape:
            mean, variance = self.encoder(real)
            latent = self.sample(mean, variance)
            kl_loss = -0.5 * tf.reduce_mean(1 + variance - tf.square(mean) - tf.exp(variance))
            fake = self.combined_model([latent, seg])
            pred = self.discriminator([fake, seg])
            g_loss = self.bce(tf.ones_like(pred), pred)
            recon = tf.reduce_mean(tf.abs(real - fake))
            total_loss = g_loss + 0.1 * kl_loss + 10.0 * recon
        gradients = tape.gradient(total_loss, self.combined_model.trainable_variables)
        self.generator_optimizer.apply_gradients(zip(gradients, self.combined_model.trainable_variables))
        return total_loss, kl_loss, recon


gan = GauGAN()
ds = tf.data.Dataset.from_tensor_slices((segs, images)).shuffle(4096, seed=3).batch(BATCH, drop_remainder=True)
enc_before = [w.numpy().copy() for w in gan.encoder.trainable_weights]
for epoch in range(4):
    for seg, real in ds:
        mean, variance = gan.encoder(real)
        latent = gan.sample(mean, variance)
        d_loss = gan.train_discriminator(latent, seg, real)
        total, kl, recon = gan.train_generator(seg, real)
    print(f"epoch {epoch}: d {float(d_loss):.3f} g_total {float(total):.3f} kl {float(kl):.3f} recon {float(recon):.3f}")
moved = [float(np.abs(a - w.numpy()).max()) for a, w in zip(enc_before, gan.encoder.trainable_weights)]
print("max change of encoder weights:", max(moved))
