"""Symptom: training accuracy reaches 0.89, but evaluate gives 0.61 on the same kind of data.
The features are raw measurements (mean 12, spread 3) and the model normalizes them with
BatchNormalization at its default momentum, 0.99: its moving statistics average about a hundred
updates, and three epochs of 25 batches make 75. At the end of fit they are still near their
start (mean 0, variance 1), and inference normalizes by them.

(hunt14's bn_momentum: held-out accuracy 0.61 against 0.90 with momentum 0.9,
ok_batchnorm_momentum_too_slow_for_short_fit.py.)
expected: batchnorm-statistics-stale
"""
import keras
import numpy as np

rng = np.random.default_rng(35)
features, classes = 20, 4
centers = rng.normal(size=(classes, features)) * 0.6


def make(n):
    y = rng.integers(0, classes, n)
    return (12.0 + 3.0 * (centers[y] + rng.normal(size=(n, features)))).astype("float32"), y


x, y = make(1600)
x_test, y_test = make(1000)
MOMENTUM = 0.99  # Keras' default

keras.utils.set_random_seed(35)
model = keras.Sequential(
    [
        keras.Input((features,)),
        keras.layers.BatchNormalization(momentum=MOMENTUM),
        keras.layers.Dense(64),
        keras.layers.BatchNormalization(momentum=MOMENTUM),
        keras.layers.Activation("relu"),
        keras.layers.Dense(classes),
    ]
)
model.compile(
    keras.optimizers.Adam(3e-3),
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x, y, epochs=3, batch_size=64, verbose=2)
print(f"held-out accuracy {model.evaluate(x_test, y_test, verbose=0)[1]:.3f}")
