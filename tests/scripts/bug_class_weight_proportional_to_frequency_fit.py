"""Reported symptom: on imbalanced data (9:1) the model predicts the majority class only, with
accuracy 0.9 and recall 0 on the rare class, although class weights were passed to fit. The
weights were computed as each class's count / total, which weighs the frequent class up and
the rare one down: the imbalance squared instead of evened out.

Source: a pattern of user reports ("class_weight makes it worse"): weights must be inversely
        proportional to the counts, total / (n_classes * count).
expected: class-weights-inverted
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
n = 3000
y = (rng.random(n) < 0.1).astype("int64")  # 10% positives
x = (rng.normal(size=(n, 12)) + 0.6 * y[:, None]).astype("float32")
counts = np.bincount(y)
class_weight = {c: counts[c] / n for c in range(2)}  # meant: n / (2 * counts[c])
model = keras.Sequential(
    [keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
)
model.compile(
    keras.optimizers.Adam(1e-3),
    keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.Recall(thresholds=0.0)],
)
history = model.fit(x, y, epochs=5, batch_size=64, verbose=0, class_weight=class_weight)
print(f"recall of the rare class {history.history['recall'][-1]:.3f}")
