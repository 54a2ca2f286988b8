"""Reported symptom: an embedding regressor trained with a hand-made "cosine distance" loss,
`1 - keras.losses.cosine_similarity(y_true, y_pred)`: the loss falls steadily, yet the predicted
embeddings point away from their targets. `keras.losses.cosine_similarity` already returns the
negated cosine (-1 for a perfect match, so that it can be minimized), so `1 - (-cos) = 1 + cos`
is minimized by a cosine of -1.

Sources: https://github.com/tensorflow/tensorflow/issues/34577 and
         https://github.com/tensorflow/tensorflow/issues/37896 (Keras' cosine similarity loss is
         the negated cosine; users misread its sign)
expected: loss-sign-flipped
"""

import keras
import numpy as np

PLUS = False  # the healthy twin writes 1 + cosine_similarity (ok_one_plus_keras_cosine_similarity_fit)

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
