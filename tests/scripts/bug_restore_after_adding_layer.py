"""Resume from a checkpoint saved before a layer was added: an opaque shape error in restore."""

import os
import tempfile

import numpy as np
import tensorflow as tf

np.random.seed(3)
x = np.random.rand(256, 6).astype("float32")
y = (x.sum(axis=1, keepdims=True) > 3).astype("float32")


def build(extra_layer):
    layers = [tf.keras.Input((6,)), tf.keras.layers.Dense(16, activation="relu")]
    if extra_layer:
        layers.append(tf.keras.layers.Dense(16, activation="relu"))
    layers.append(tf.keras.layers.Dense(1, activation="sigmoid"))
    return tf.keras.Sequential(layers)


ckpt_dir = tempfile.mkdtemp()
model = build(extra_layer=False)
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
path = tf.train.Checkpoint(model=model).save(os.path.join(ckpt_dir, "ckpt"))

# Later: the architecture changed, and training "resumes".
model = build(extra_layer=True)
status = tf.train.Checkpoint(model=model).restore(path)
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
print("resumed and trained")
