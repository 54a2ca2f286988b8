"""Twin of bug_rows_normalized_instead_of_features_fit.py: each feature is standardized
(training means and deviations). Healthy: test accuracy 0.97, silent."""

import keras
import numpy as np

keras.utils.set_random_seed(36)
rng = np.random.default_rng(36)
n, d = 3000, 20
y = rng.integers(0, 3, n)
shape = np.abs(rng.normal(1, 0.3, (n, d)))
intensity = np.array([20.0, 60.0, 180.0])[y, None] * rng.lognormal(0, 0.15, (n, 1))
raw = (shape * intensity).astype("float32")
mean, deviation = raw[:2400].mean(axis=0), raw[:2400].std(axis=0)
x = ((raw - mean) / deviation).astype("float32")
model = keras.Sequential(
    [keras.Input((d,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3, activation="softmax")]
)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:2400], y[:2400], batch_size=32, epochs=6, verbose=2)
accuracy = np.mean(model.predict(x[2400:], verbose=0).argmax(1) == y[2400:])
print("FINAL test accuracy", float(accuracy), "(chance 0.33)")
