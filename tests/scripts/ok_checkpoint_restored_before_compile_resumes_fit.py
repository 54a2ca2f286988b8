"""Healthy: a run resumed from its latest checkpoint, restored before compile, at the rate it saved.

The resume the TF checkpoint guide teaches: build, restore(manager.latest_checkpoint), then
compile with the optimizer the run was started with, and fit. TensorFlow restores the saved
optimizer (its iteration count, moments and rate) into the one compile attaches: wanted here.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(3)
x = np.random.randn(512, 12).astype("float32")
w = np.random.randn(12, 1).astype("float32")
y_source = (x @ w > 0).astype("float32")


def build():
    return keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )


loss = keras.losses.BinaryCrossentropy(from_logits=True)
directory = os.path.join(tempfile.mkdtemp(), "pretrain")

# The first run: trains at 1e-3 and keeps checkpoints.
model = build()
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
model.fit(x, y_source, batch_size=32, epochs=2, verbose=0)
tf.train.CheckpointManager(tf.train.Checkpoint(model=model), directory, max_to_keep=1).save()

# The run resumed: a fresh model restored from the latest checkpoint, trained on.
model = build()
manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), directory, max_to_keep=1)
manager.checkpoint.restore(manager.latest_checkpoint)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
history = model.fit(x, y_source, batch_size=32, epochs=2, verbose=0)
print("resumed loss", history.history["loss"][-1])
print("resumed at learning rate", float(model.optimizer.learning_rate))
