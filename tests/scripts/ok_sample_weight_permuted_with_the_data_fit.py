"""Healthy twin of bug_sample_weight_not_permuted_with_the_data_fit.py: the balanced weights
are shuffled with the same permutation as x and y, so each example keeps its class's weight.

Source: hunt23 p13 (its fix).
expected: silent
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
n = 2000
y = (rng.random(n) < 0.06).astype("float32")
x = (rng.normal(size=(n, 8)) + y[:, None] * 0.9).astype("float32")
counts = np.bincount(y.astype(int))
weights = (n / (2.0 * counts))[y.astype(int)]
perm = rng.permutation(n)
x, y, weights = x[perm], y[perm], weights[perm]
model = keras.Sequential(
    [
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
model.fit(x[:1500], y[:1500], sample_weight=weights[:1500], batch_size=64, epochs=4, verbose=0)
predicted, held = model.predict(x[1500:], verbose=0)[:, 0] > 0.5, y[1500:]
recall, specificity = np.mean(predicted[held == 1]), np.mean(~predicted[held == 0])
print(f"balanced accuracy {(recall + specificity) / 2:.3f}")
