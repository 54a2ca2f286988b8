"""Resume training with model.load_weights(".weights.h5") into a freshly compiled model.

Reconstructed from https://github.com/keras-team/keras/issues/2378 ("Not able to resume training
after loading model + weights"). In Keras 3 the .weights.h5 file does hold Adam's moments and
iteration count, but the new model's optimizer has not been built yet (it builds at its first
step), so load_weights skips all of them with a UserWarning only: Adam restarts from zero.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(41)
x = np.random.randn(512, 10).astype("float32")
y = (x @ np.random.randn(10, 1) + 0.1 * np.random.randn(512, 1)).astype("float32")


def build():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((10,)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="mse")
    return model


path = os.path.join(tempfile.mkdtemp(), "model.weights.h5")
model = build()
model.fit(x, y, epochs=3, batch_size=32, verbose=0)
model.save_weights(path)
print("stage 1 loss", float(model.evaluate(x, y, verbose=0)))

# Later, in a new process: rebuild, load, and "resume".
model = build()
model.load_weights(path)
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
print("resumed at iteration", int(model.optimizer.iterations))
