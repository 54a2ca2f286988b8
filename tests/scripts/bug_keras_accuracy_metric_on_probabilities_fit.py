"""Reported symptom: accuracy 0.0000e+00 at every epoch while the loss falls, and the model
EarlyStopping restores predicts barely better than chance. metrics=[keras.metrics.Accuracy()]
counts predictions exactly equal to the labels, which softmax probabilities never are; so
val_accuracy never improves after the first epoch and restore_best_weights puts it back.

Source: https://openillumi.com/en/en-keras-metrics-accuracy-trap (hunt17)
expected: accuracy-exact-match
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
prototypes = rng.normal(size=(8, 32))
classes = rng.integers(0, 8, size=2400)
x = (prototypes[classes] + rng.normal(0, 1.6, size=(2400, 32))).astype("float32")
y = keras.utils.to_categorical(classes, 8)
model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(8, activation="softmax"),
    ]
)
metric = keras.metrics.Accuracy()  # meant: "accuracy"
model.compile(keras.optimizers.SGD(0.01), "categorical_crossentropy", metrics=[metric])
stop = keras.callbacks.EarlyStopping("val_accuracy", mode="max", patience=3, restore_best_weights=True)
model.fit(x[:2000], y[:2000], validation_data=(x[2000:], y[2000:]), batch_size=64, epochs=8, callbacks=[stop], verbose=0)
predicted = model.predict(x[2000:], verbose=0).argmax(1)
print(f"held-out accuracy {np.mean(predicted == classes[2000:]):.3f}")
