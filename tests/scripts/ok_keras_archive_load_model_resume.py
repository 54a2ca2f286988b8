"""Resume from a .keras archive with keras.models.load_model(): the optimizer comes back whole.

Healthy twin of bug_keras_archive_load_weights_optimizer_not_built.py
(https://github.com/keras-team/keras/issues/20128): load_model compiles the model from the
archive, builds its optimizer and then loads every saved value, Adam's state included.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(44)
x = np.random.randn(512, 16).astype("float32")
y = np.argmax(x[:, :4] + 0.1 * np.random.randn(512, 4), axis=1)


def build():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((16,)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(4),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


path = os.path.join(tempfile.mkdtemp(), "model.keras")
model = build()
model.fit(x, y, epochs=3, batch_size=32, verbose=0)
model.save(path)

# The resume script: the whole model, optimizer included, from the archive.
model = tf.keras.models.load_model(path)
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
print("resumed at iteration", int(model.optimizer.iterations))
