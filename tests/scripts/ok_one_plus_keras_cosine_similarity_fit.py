"""Healthy twin of bug_one_minus_keras_cosine_similarity_fit: the cosine distance written as
`1 + keras.losses.cosine_similarity` (0 at a perfect match), which turns the predictions toward
their targets.

expected: no findings
"""

import keras
import numpy as np

PLUS = True  # the buggy twin writes 1 - cosine_similarity

rng = np.random.default_rng(16)
keras.utils.set_random_seed(16)
x = rng.normal(size=(1500, 16)).astype("float32")
t = np.tanh(x @ rng.normal(size=(16, 32))) @ rng.normal(size=(32, 8))
y = (t / np.linalg.norm(t, axis=1, keepdims=True)).astype("float32")  # unit target embeddings
x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]


def cosine_distance(y_true, y_pred):
    cosine = keras.losses.cosine_similarity(y_true, y_pred)  # already negated: -1 at a match
    return 1.0 + cosine if PLUS else 1.0 - cosine


model = keras.Sequential(
    [
        keras.Input((16,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(8),
    ]
)
model.compile(optimizer="adam", loss=cosine_distance)
history = model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0)
print("loss per epoch:", [round(v, 4) for v in history.history["loss"]])
p = model.predict(x_test, verbose=0)
cosine = np.sum(p * y_test, axis=1) / np.linalg.norm(p, axis=1)
print("test mean cosine(prediction, target):", round(float(cosine.mean()), 3))
