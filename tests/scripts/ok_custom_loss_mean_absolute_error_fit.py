"""Healthy twin: the same regression with the custom loss written as a mean absolute error,
tf.reduce_mean(tf.abs(y_true - y_pred)): each example's error is taken whole before the mean,
so the gradient follows the labels and the loss falls toward 0.

expected: silent
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(4)
x = rng.normal(size=(1200, 10)).astype("float32")
y = (x @ rng.normal(size=(10, 1)) + 3.0).astype("float32")


def regression_loss(y_true, y_pred):
    return tf.reduce_mean(tf.abs(y_true - y_pred))


model = keras.Sequential(
    [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=regression_loss, metrics=["mae"])
history = model.fit(x, y, epochs=6, batch_size=32, validation_split=0.2, verbose=0)
print("loss per epoch:", [round(v, 3) for v in history.history["loss"]])
print("validation MAE per epoch:", [round(v, 3) for v in history.history["val_mae"]])
