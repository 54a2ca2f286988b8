"""Healthy twin: the same multi-gate layer, the concatenation done in call(); fit trains every gate.

Source: https://github.com/tensorflow/tensorflow/issues/40632 (healthy twin: "if I make a list of
        weights in build and concatenate them in call it works")
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(7)
tf.random.set_seed(7)


class MultiGate(keras.layers.Layer):
    def __init__(self, units, n_gates=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.n_gates = n_gates

    def build(self, input_shape):
        self.gates = [
            self.add_weight(name=f"gate_{i}", shape=(input_shape[-1], self.units), initializer="glorot_uniform")
            for i in range(self.n_gates)
        ]

    def call(self, inputs):
        kernel = tf.concat(self.gates, axis=1)
        return tf.nn.relu(tf.matmul(inputs, kernel))


inputs = keras.Input((10,))
h = keras.layers.Dense(32, activation="relu")(inputs)
h = MultiGate(16)(h)
outputs = keras.layers.Dense(1)(h)
model = keras.Model(inputs, outputs)
model.compile(optimizer="adam", loss="mse")

x = np.random.randn(2048, 10).astype("float32")
y = (x[:, :3].sum(axis=1, keepdims=True) ** 2 / 3.0).astype("float32")
hist = model.fit(x, y, epochs=6, batch_size=64, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
