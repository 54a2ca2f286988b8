"""Reported symptom: on 3 imbalanced classes with "balanced" class weights, the rarest class
is never predicted (recall 0) and balanced accuracy is at chance. The raw labels are 1..3;
the model is trained on y - 1, but the weights were counted on the raw labels with a
bincount, so key 0 weighs 0 and every class gets the weight of the class before it.

Source: hunt16 (a pattern of user reports: labels numbered from 1, shifted for the model,
        class weights counted before the shift).
expected: class-weights-misnumbered
"""

import keras
import numpy as np

rng = np.random.default_rng(43)
keras.utils.set_random_seed(43)
n = 3000
raw = rng.choice([1, 2, 3], size=n, p=[0.2, 0.5, 0.3])
x = rng.normal(size=(n, 6)).astype("float32")
x[np.arange(n), raw - 1] += 1.3
y = raw - 1
counts = np.bincount(raw)  # meant: np.bincount(y)
class_weight = dict(enumerate(np.where(counts > 0, n / (3 * np.maximum(counts, 1)), 0.0)))
model = keras.Sequential(
    [
        keras.Input((6,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ]
)
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x[:2400], y[:2400], batch_size=32, epochs=6, class_weight=class_weight, verbose=0)
predicted, held = model.predict(x[2400:], verbose=0).argmax(1), y[2400:]
print("recalls", [round(float(np.mean(predicted[held == k] == k)), 3) for k in range(3)])
