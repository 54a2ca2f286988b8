"""Healthy twin of bug_validation_split_on_data_sorted_by_target_fit.py: the table sorted by price
is shuffled (x and y together) before fit, so validation_split takes a random fifth of the
prices and the model trains on the whole range.

expected: silent
"""
import keras
import numpy as np

rng = np.random.default_rng(0)
w = rng.normal(size=8)
w /= np.linalg.norm(w)


def make(n):
    x = rng.normal(size=(n, 8)).astype("float32")
    s = x @ w
    return x, (s + 0.8 * s**2 + 0.3 * x[:, 1] + 0.2 * rng.normal(size=n)).astype("float32")


x, y = make(2000)
order = np.argsort(y)  # the export is sorted by price
x, y = x[order], y[order]
p = rng.permutation(len(x))  # the fix: shuffle before the split
x, y = x[p], y[p]
x_test, y_test = make(1000)

keras.utils.set_random_seed(0)
model = keras.Sequential(
    [
        keras.Input((8,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(keras.optimizers.Adam(1e-3), "mse")
model.fit(x, y, validation_split=0.2, batch_size=64, epochs=8, verbose=2)
pred = model.predict(x_test, verbose=0)[:, 0]
print(f"test R^2 {1 - np.mean((pred - y_test) ** 2) / np.var(y_test):.3f}")
