"""Healthy twin of bug_batchnorm_momentum_too_slow_for_short_fit.py: the same raw features and
the same 75 updates, with BatchNormalization(momentum=0.9), whose moving statistics average
about ten updates and match the data's long before fit ends (held-out accuracy 0.90).
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
MOMENTUM = 0.9  # averages about ten updates: caught up within the first epoch

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
