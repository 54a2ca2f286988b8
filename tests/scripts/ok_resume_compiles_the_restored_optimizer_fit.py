"""Healthy: the resumed job compiles the model with the optimizer it restored, so training goes
on from the saved step count, moments and schedule position.

Source: https://www.tensorflow.org/guide/checkpoint (Checkpoint(model=..., optimizer=...)),
        https://keras.io/api/models/model_training_apis/ (compile), hunt27 b04
expected: silent
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
model.compile(optimizer=optimizer, loss="mse")
model.fit(x, y, epochs=1, batch_size=32, verbose=0)
print("optimizer at step", int(model.optimizer.iterations))
