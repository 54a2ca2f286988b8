"""Reported symptom: a tied-weights autoencoder (the decoder reuses the encoder's kernel,
transposed) barely lowers its reconstruction error. The transpose is taken in the decoder's
build(), eagerly: a constant copy of the encoder's first kernel, never trained.

Source: hunt22 p09 (a pattern of user reports: a DenseTranspose layer ported with the
        transpose stored in build).
expected: weights-copied-as-constant
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
basis = rng.normal(size=(6, 40)).astype("float32")
x = (rng.normal(size=(2500, 6)) @ basis / np.sqrt(6)).astype("float32")
x += 0.05 * rng.normal(size=x.shape).astype("float32")


class DenseTranspose(keras.layers.Layer):
    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.dense.kernel.shape[0],), initializer="zeros")
        self.kernel_t = tf.transpose(self.dense.kernel)  # meant: in call()

    def call(self, inputs):
        return tf.matmul(inputs, self.kernel_t) + self.bias


encoder = keras.layers.Dense(6, name="encoder")
inputs = keras.Input((40,))
model = keras.Model(inputs, DenseTranspose(encoder, name="decoder")(encoder(inputs)))
model.compile(keras.optimizers.Adam(3e-3), "mse")
model.fit(x[:2000], x[:2000], batch_size=64, epochs=5, verbose=0)
print(f"test mse {model.evaluate(x[2000:], x[2000:], verbose=0):.4f}")
