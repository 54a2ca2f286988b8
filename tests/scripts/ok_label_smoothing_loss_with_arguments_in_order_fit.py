"""Healthy: a label-smoothing loss calling categorical_crossentropy(y_true, y_pred).

The twin of the swapped call: the labels first, and the smoothing term's uniform target first
too; the classifier learns.

Source: https://github.com/keras-team/keras/issues/8993,
        https://github.com/tensorflow/tensorflow/issues/38067 (hunt33 b02)
expected: silent
"""
import keras
import numpy as np
from keras import layers, ops

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
NUM_CLASSES = 20
centers = rng.normal(size=(NUM_CLASSES, 32)) * 1.2
labels = rng.integers(0, NUM_CLASSES, size=1200)
x = (centers[labels] + rng.normal(size=(1200, 32)) * 1.5).astype("float32")
y = keras.utils.to_categorical(labels, NUM_CLASSES).astype("float32")


def smoothed_loss(y_true, y_pred, e=0.1):
    uniform = ops.ones_like(y_pred) / NUM_CLASSES
    return (1 - e) * keras.losses.categorical_crossentropy(
        y_true, y_pred
    ) + e * keras.losses.categorical_crossentropy(uniform, y_pred)


model = keras.Sequential(
    [
        keras.Input(shape=(32,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(NUM_CLASSES, activation="softmax"),
    ]
)
model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=smoothed_loss, metrics=["acc"])
model.fit(x[:1000], y[:1000], batch_size=64, epochs=3, verbose=2)
print("held-out accuracy", model.evaluate(x[1000:], y[1000:], verbose=0)[1])
