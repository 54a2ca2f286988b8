"""Healthy twin: the same hand-written GRU cell in keras.layers.RNN trained with fit; all gates used.

Source: https://github.com/tensorflow/probability/issues/927 (healthy twin: every weight the cell
        creates is used in call()); https://keras.io/api/layers/recurrent_layers/rnn/
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(4)
tf.random.set_seed(4)


class myGRU(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        self.units = units
        self.state_size = units
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.dim = input_shape[-1]
        self.w_r = self.add_weight(shape=[self.dim + self.units, self.units], initializer="glorot_uniform", name="reset_gate")
        self.b_r = self.add_weight(shape=[self.units], initializer="zeros", name="reset_gate_bias")
        self.w_z = self.add_weight(shape=[self.dim + self.units, self.units], initializer="glorot_uniform", name="update_gate")
        self.b_z = self.add_weight(shape=[self.units], initializer="zeros", name="update_gate_bias")
        self.w_h = self.add_weight(shape=[self.dim + self.units, self.units], initializer="glorot_uniform", name="interim")
        self.b_h = self.add_weight(shape=[self.units], initializer="zeros", name="candidate_bias")

    def call(self, inputs, states):
        h_prev = states[0]
        xh = tf.concat([inputs, h_prev], axis=-1)
        r = tf.sigmoid(tf.matmul(xh, self.w_r) + self.b_r)
        z = tf.sigmoid(tf.matmul(xh, self.w_z) + self.b_z)
        xrh = tf.concat([inputs, r * h_prev], axis=-1)
        h_tilde = tf.tanh(tf.matmul(xrh, self.w_h) + self.b_h)
        h = (1 - z) * h_prev + z * h_tilde
        return h, [h]


seq = np.random.randn(1024, 12, 3).astype("float32")
target = seq[:, :, 0].mean(axis=1, keepdims=True).astype("float32")

model = keras.Sequential([
    keras.Input((12, 3)),
    keras.layers.RNN(myGRU(16)),
    keras.layers.Dense(1),
])
model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
hist = model.fit(seq, target, epochs=5, batch_size=64, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
