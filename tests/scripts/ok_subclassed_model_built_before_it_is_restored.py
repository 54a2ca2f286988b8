"""Healthy twin: the same serving code, the subclassed model called on a batch first so that its
variables exist when the checkpoint is restored into it.

Source: https://www.tensorflow.org/guide/checkpoint (restore into built objects)
expected: silent
"""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf


class Regressor(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))


keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(3000, 10)).astype("float32")
y = np.tanh(x @ rng.normal(size=(10, 1))).astype("float32")
model = Regressor()
model.compile("adam", "mse")
model.fit(x[:2500], y[:2500], epochs=3, batch_size=32, verbose=0)
path = tf.train.Checkpoint(model=model).save(os.path.join(tempfile.mkdtemp(), "ckpt"))

served = Regressor()
served(x[:1])  # its variables made before the restore
tf.train.Checkpoint(model=served).restore(path)
mse = float(np.mean((served.predict(x[2500:], verbose=0) - y[2500:]) ** 2))
print(f"held-out MSE {mse:.4f}")
