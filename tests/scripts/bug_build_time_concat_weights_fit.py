"""Reported symptom: a custom layer creates several gate matrices with add_weight and concatenates
them once in build(); the concatenated tensor is a constant computed outside any tape, so the gate
weights get None gradients. Here the layer sits between two Dense layers, so Keras 3 fit only warns
"Gradients do not exist for variables" and trains the Dense layers; the gates never change.

Source: https://github.com/tensorflow/tensorflow/issues/40632 ("Concatenating weights in Keras custom
        layer using `add_weight` fails while computing gradients": concatenating in build() gives
        "No gradients provided", concatenating in call() works);
        see also https://github.com/keras-team/keras/issues/4401 (fchollet: first create the
        variables, *then* apply operations to them in call())
expected: none-gradient
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
        self.kernel = tf.concat(self.gates, axis=1)  # done once, outside call()

    def call(self, inputs):
        return tf.nn.relu(tf.matmul(inputs, self.kernel))


inputs = keras.Input((10,))
h = keras.layers.Dense(32, activation="relu")(inputs)
h = MultiGate(16)(h)
outputs = keras.layers.Dense(1)(h)
model = keras.Model(inputs, outputs)
model.compile(optimizer="adam", loss="mse")

x = np.random.randn(2048, 10).astype("float32")
y = (x[:, :3].sum(axis=1, keepdims=True) ** 2 / 3.0).astype("float32")
gate0 = model.layers[2].gates[0].numpy().copy()
hist = model.fit(x, y, epochs=6, batch_size=64, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
print("gate_0 max change:", float(np.abs(model.layers[2].gates[0].numpy() - gate0).max()))
