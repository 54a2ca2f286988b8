"""Healthy twin of bug_tied_decoder_kernel_transposed_in_build_fit.py: the decoder transposes
the encoder's kernel in call(), so both layers train the one kernel.

Source: hunt22 p09 (its fix).
expected: silent
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

    def call(self, inputs):
        return tf.matmul(inputs, tf.transpose(self.dense.kernel)) + self.bias


encoder = keras.layers.Dense(6, name="encoder")
inputs = keras.Input((40,))
model = keras.Model(inputs, DenseTranspose(encoder, name="decoder")(encoder(inputs)))
model.compile(keras.optimizers.Adam(3e-3), "mse")
model.fit(x[:2000], x[:2000], batch_size=64, epochs=5, verbose=0)
print(f"test mse {model.evaluate(x[2000:], x[2000:], verbose=0):.4f}")
