"""Bug: a label-smoothing loss calls categorical_crossentropy(y_pred, y_true).

Keras' losses take y_true first. Swapped, the loss takes the log of the one-hot labels clipped to
1e-7 and weighs it by the predicted probabilities: every wrong class costs 16 times its
probability, a loss linear in the probabilities whose gradient fades on confident mistakes. It
trains, slowly and badly (held-out accuracy 0.73 against 0.97 in the report's setting).

Source: https://github.com/keras-team/keras/issues/8993,
        https://github.com/tensorflow/tensorflow/issues/38067 (hunt33 b02)
expected: labels-out-of-range
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
        y_pred, y_true
    ) + e * keras.losses.categorical_crossentropy(y_pred, uniform)


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
