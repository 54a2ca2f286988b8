"""Resume training with model.load_weights(".weights.h5"), the optimizer built first.

Healthy twin of bug_load_weights_h5_optimizer_not_built.py
(https://github.com/keras-team/keras/issues/2378): building the optimizer before load_weights
gives Adam's moments and iteration count somewhere to go, so training really resumes.
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
model.optimizer.build(model.trainable_variables)  # so that its state has somewhere to go
model.load_weights(path)
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
print("resumed at iteration", int(model.optimizer.iterations))
