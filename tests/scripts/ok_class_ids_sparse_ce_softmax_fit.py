"""Healthy twin of bug_class_ids_against_softmax_mse_fit: the same (n, 1) column of class ids
read by sparse_categorical_crossentropy, one id against the softmax's probabilities as meant.

expected: no findings
"""

import keras
import numpy as np

SPARSE = True  # the buggy twin compares the ids with every probability in mse

rng = np.random.default_rng(6)
keras.utils.set_random_seed(6)
x = rng.normal(size=(1500, 12)).astype("float32")
label = (x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] > 0).astype("int32")
y = label.reshape(-1, 1)  # an (n, 1) column of class ids
x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]

model = keras.Sequential(
    [
        keras.Input((12,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy" if SPARSE else "mse")
history = model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0)
print("loss per epoch:", [round(v, 4) for v in history.history["loss"]])
predicted = model.predict(x_test, verbose=0)
print("test accuracy (argmax):", round(float((predicted.argmax(axis=1) == y_test[:, 0]).mean()), 3))
