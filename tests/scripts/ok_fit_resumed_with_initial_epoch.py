"""Healthy: the restarted job loads the last saved model and calls fit with initial_epoch, so the
epoch-indexed LearningRateScheduler goes on from where the first job stopped.

Source: https://keras.io/api/callbacks/learning_rate_scheduler/,
        https://keras.io/api/models/model_training_apis/ (fit, initial_epoch), hunt27 b07
expected: silent
"""
import os
import tempfile

import keras
import numpy as np

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 10)).astype("float32")
y = np.tanh(x @ rng.normal(size=(10, 1))).astype("float32")
last = os.path.join(tempfile.mkdtemp(), "last.keras")


def schedule(epoch, lr):
    return 1e-2 * 0.6**epoch


keras.utils.set_random_seed(0)
model = keras.Sequential(
    [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
model.compile(keras.optimizers.Adam(1e-2), "mse")
callbacks = [keras.callbacks.LearningRateScheduler(schedule), keras.callbacks.ModelCheckpoint(last)]
model.fit(x, y, epochs=8, batch_size=32, verbose=0, callbacks=callbacks)

# The job was restarted.
model = keras.models.load_model(last)
history = model.fit(
    x, y, initial_epoch=8, epochs=10, batch_size=32, verbose=0, callbacks=callbacks
)
print("loss after resuming", [round(v, 4) for v in history.history["loss"]])
