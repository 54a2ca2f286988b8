"""BUG: a VAE (Keras' "VAE with a custom train_step" pattern) whose reconstruction loss is the
binary cross-entropy averaged over the 64 pixels while the KL is summed over the latents: the KL
weighs 64 times more than in the ELBO. The encoder gives up on the latent code: every input is
encoded as the prior, the KL falls to about 0, and the decoder outputs the mean image
(held-out reconstruction error 0.158, the mean image's, against 0.049 with the reconstruction
summed over the pixels).
Source: https://github.com/keras-team/keras/pull/3383 ("Correcting the reconstruction loss in
the VAE example": the mean over the pixels made the KL dominate); hunt28 b07, hunt31 b07.
A tool should say: the posterior collapsed (KL near 0, z unused) -- sum the reconstruction
over the features."""
import keras
import numpy as np
import tensorflow as tf
from keras import ops

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n_pix, latent_dim = 64, 2
A = rng.normal(size=(3, 32))
B = rng.normal(size=(32, n_pix))


def make(n):
    z = rng.normal(size=(n, 3))
    return (1 / (1 + np.exp(-(np.tanh(z @ A) @ B)))).astype("float32")


x_train, x_test = make(2560), make(1000)


class Sampling(keras.layers.Layer):
    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_gen)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def build(self, input_shape):
        self.seed_gen = keras.random.SeedGenerator(1)


ei = keras.Input((n_pix,))
h = keras.layers.Dense(128, activation="relu")(ei)
z_mean = keras.layers.Dense(latent_dim)(h)
z_log_var = keras.layers.Dense(latent_dim)(h)
z = Sampling()([z_mean, z_log_var])
encoder = keras.Model(ei, [z_mean, z_log_var, z])
di = keras.Input((latent_dim,))
hd = keras.layers.Dense(128, activation="relu")(di)
decoder = keras.Model(di, keras.layers.Dense(n_pix, activation="sigmoid")(hd))


class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kw):
        super().__init__(**kw)
        self.encoder, self.decoder = encoder, decoder
        self.total_tracker = keras.metrics.Mean(name="loss")
        self.rec_tracker = keras.metrics.Mean(name="rec")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self):
        return [self.total_tracker, self.rec_tracker, self.kl_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            rec = self.decoder(z)
            rec_loss = ops.mean(keras.losses.binary_crossentropy(data, rec))  # BUG: a mean over the pixels
            kl = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl, axis=1))
            total = rec_loss + kl_loss
        grads = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_tracker.update_state(total)
        self.rec_tracker.update_state(rec_loss)
        self.kl_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


vae = VAE(encoder, decoder)
vae.compile(optimizer=keras.optimizers.Adam(1e-3))
vae.fit(x_train, epochs=6, batch_size=64, verbose=0)
zm = encoder.predict(x_test, verbose=0)[0]
mse = np.mean((decoder.predict(zm, verbose=0) - x_test) ** 2)
print(f"mean-image MSE {np.mean((x_train.mean(0) - x_test) ** 2):.4f}")
print(f"HELDOUT recon_mse={mse:.4f}")
