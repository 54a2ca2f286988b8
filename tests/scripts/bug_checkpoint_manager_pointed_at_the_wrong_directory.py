"""Reported symptom: "my restored model performs like an untrained one". The evaluation code's
CheckpointManager points at another directory than the one training saved to ("checkpoints"
for "ckpts"): latest_checkpoint is None, checkpoint.restore(None) restores nothing without a
word, and the model is evaluated with its random initial weights.

Source: https://www.tensorflow.org/guide/checkpoint (restore(manager.latest_checkpoint), "if
        manager.latest_checkpoint: ... else: Initializing from scratch"), hunt27 b05
expected: checkpoint-missing-variables
"""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
x = rng.normal(size=(3000, 10)).astype("float32")
y = np.tanh(x @ rng.normal(size=(10, 1))).astype("float32")
run_dir = tempfile.mkdtemp()


def build_model():
    return keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )


# Training job.
keras.utils.set_random_seed(0)
model = build_model()
model.compile("adam", "mse")
model.fit(x[:2500], y[:2500], epochs=3, batch_size=32, verbose=0)
checkpoint = tf.train.Checkpoint(model=model)
tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "ckpts"), max_to_keep=3).save()

# Evaluation job.
keras.utils.set_random_seed(1)
model = build_model()
checkpoint = tf.train.Checkpoint(model=model)
manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), 3)
checkpoint.restore(manager.latest_checkpoint)
mse = float(np.mean((model.predict(x[2500:], verbose=0) - y[2500:]) ** 2))
print(f"held-out MSE {mse:.4f}")
