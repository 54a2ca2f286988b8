"""Reported symptom: "my custom loss goes negative and keeps falling, and the predictions grow
without bound". The custom regression loss is the mean error, tf.reduce_mean(y_true - y_pred):
the square (or the absolute value) was forgotten, so the loss is linear in the predictions, its
gradient is the same whatever the labels, and minimizing it only pushes every prediction up.

Source: a pattern of user reports: a hand-written loss passed to model.compile that
        subtracts the predictions from the labels and averages, never squaring.
expected: labels-uninformative, naming the loss as linear in the error
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(4)
x = rng.normal(size=(1200, 10)).astype("float32")
y = (x @ rng.normal(size=(10, 1)) + 3.0).astype("float32")


def regression_loss(y_true, y_pred):
    return tf.reduce_mean(y_true - y_pred)


model = keras.Sequential(
    [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=regression_loss, metrics=["mae"])
history = model.fit(x, y, epochs=6, batch_size=32, validation_split=0.2, verbose=0)
print("loss per epoch:", [round(v, 3) for v in history.history["loss"]])
print("validation MAE per epoch:", [round(v, 3) for v in history.history["val_mae"]])
