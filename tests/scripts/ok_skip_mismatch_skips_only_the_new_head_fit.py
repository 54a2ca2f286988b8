"""Healthy: fine-tuning pretrained weights with a 2-unit head; load_weights(skip_mismatch=True)
skips exactly the head, the documented Keras way, and the hidden layer loads.

Source: https://keras.io/api/models/model_saving_apis/weights_saving_and_loading/
        (load_weights, skip_mismatch), hunt27 b11
expected: silent
"""
import os
import tempfile

import keras
import numpy as np

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 10)).astype("float32")
y = np.tanh(x @ rng.normal(size=(10, 1))).astype("float32")
path = os.path.join(tempfile.mkdtemp(), "pretrained.weights.h5")


def build(width, outputs):
    return keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(outputs),
        ]
    )


keras.utils.set_random_seed(0)
pretrained = build(32, 1)
pretrained.compile(optimizer="adam", loss="mse")
pretrained.fit(x, y, epochs=4, batch_size=32, verbose=0)
pretrained.save_weights(path)

# Fine-tuning on two targets, with little data.
model = build(32, 2)
model.load_weights(path, skip_mismatch=True)
model.compile(optimizer="adam", loss="mse")
history = model.fit(x[:200], np.concatenate([y[:200], -y[:200]], 1), epochs=5, verbose=0)
print("fine-tuning loss", round(history.history["loss"][-1], 4))
