"""Healthy twin of bug_class_weight_proportional_to_frequency_fit: the same 9:1 data with
class weights inversely proportional to the counts (sklearn's "balanced"), so both classes
weigh the same in the loss and the rare class is found.
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
n = 3000
y = (rng.random(n) < 0.1).astype("int64")  # 10% positives
x = (rng.normal(size=(n, 12)) + 0.6 * y[:, None]).astype("float32")
counts = np.bincount(y)
class_weight = {c: n / (2 * counts[c]) for c in range(2)}  # "balanced"
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
