"""Healthy: stage 2 restores only the model from stage 1's checkpoint and compiles an SGD with a
cosine decay for the new task, then sets the optimizer's step count back to 0 (the deferred
restore gave it Adam's), so its schedule starts at its start.

Source: https://www.tensorflow.org/guide/checkpoint (delayed restorations, expect_partial),
        https://keras.io/api/optimizers/learning_rate_schedules/cosine_decay/, hunt27 b13
expected: silent
"""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
w = rng.normal(size=(10, 1))
x = rng.normal(size=(2000, 10)).astype("float32")
y = np.tanh(x @ w).astype("float32")
x2 = rng.normal(size=(400, 10)).astype("float32")
y2 = (0.8 * np.tanh(x2 @ w) + 0.5 * np.tanh(x2[:, :1] * x2[:, 1:2])).astype("float32")
path = os.path.join(tempfile.mkdtemp(), "ckpt")


def build():
    return keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )


keras.utils.set_random_seed(0)
model, adam = build(), keras.optimizers.Adam(3e-3)
model.compile(optimizer=adam, loss="mse")
model.fit(x, y, epochs=8, batch_size=32, verbose=0)
tf.train.Checkpoint(model=model, optimizer=adam).write(path)

# Stage 2: a new task, a fresh optimizer.
model = build()
tf.train.Checkpoint(model=model).restore(path).expect_partial()
schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=130, alpha=0.01)
model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9), loss="mse")
model.optimizer.build(model.trainable_variables)
model.optimizer.iterations.assign(0)
model.fit(x2, y2, epochs=10, batch_size=32, verbose=0)
print("steps counted", int(model.optimizer.iterations), "rate now", float(model.optimizer.learning_rate))
