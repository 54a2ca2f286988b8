"""Reported symptom: "after resuming from a checkpoint the loss jumps back up". The resume
restores the model and its Adam (step count, moments, schedule position), then compiles the
model with a brand-new Adam of the same set-up: the restored optimizer never makes an update,
and training starts over at the schedule's peak rate with empty moments.

Source: https://www.tensorflow.org/guide/checkpoint (Checkpoint(model=..., optimizer=...)),
        https://keras.io/api/models/model_training_apis/ (compile), hunt27 b04
expected: checkpoint-optimizer-state-not-restored
"""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 10)).astype("float32")
y = np.tanh(x @ rng.normal(size=(10, 1))).astype("float32")
path = os.path.join(tempfile.mkdtemp(), "ckpt")


def build():
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=100, decay_rate=0.5)
    return model, keras.optimizers.Adam(schedule)


# First job: trains, saves model and optimizer.
keras.utils.set_random_seed(0)
model, optimizer = build()
model.compile(optimizer=optimizer, loss="mse")
model.fit(x, y, epochs=4, batch_size=32, verbose=0)
tf.train.Checkpoint(model=model, optimizer=optimizer).write(path)

# Resumed job.
model, optimizer = build()
tf.train.Checkpoint(model=model, optimizer=optimizer).restore(path)
print("restored at step", int(optimizer.iterations))
_, fresh = build()
model.compile(optimizer=fresh, loss="mse")  # BUG: the restored `optimizer` is never used
model.fit(x, y, epochs=1, batch_size=32, verbose=0)
print("steps taken after the resume", int(model.optimizer.iterations))
