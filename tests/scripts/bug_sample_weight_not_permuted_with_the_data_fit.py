"""Reported symptom: sample_weight "has no effect" on imbalanced data: the minority class's
recall stays low. Balanced weights were computed from the labels, then x and y were shuffled
with a permutation and the weights left in their old order, so they no longer line up.

Source: hunt23 p13 (a pattern of user reports: weights computed, then the arrays shuffled).
expected: sample-weights-misaligned
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
x, y = x[perm], y[perm]  # meant: x, y, weights = x[perm], y[perm], weights[perm]
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
