"""Reported symptom: fit's accuracy climbs to 0.98, but evaluate right after fit gives 0.28, the
chance level of 4 classes. The optimizer keeps an EMA of the weights (use_ema=True) with
ema_momentum=0.99999, an average over about 100,000 updates; fit ran 632 and, when it returned,
put that average, still 99% the first step's weights, into the model.

Source: hunt16 (a pattern of user reports: "evaluate after fit is far worse than fit's own
        accuracy" with use_ema and an ema_momentum copied from a long run).
expected: ema-weights-stale
"""

import keras
import numpy as np

rng = np.random.default_rng(40)
keras.utils.set_random_seed(40)
w = rng.normal(size=(16, 4))
x = rng.normal(size=(3000, 16)).astype("float32")
y = np.argmax(x @ w, axis=1)
model = keras.Sequential(
    [
        keras.Input((16,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(4, activation="softmax"),
    ]
)
optimizer = keras.optimizers.Adam(2e-3, use_ema=True, ema_momentum=0.99999)
model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x[:2500], y[:2500], batch_size=32, epochs=8, verbose=0)
_, accuracy = model.evaluate(x[2500:], y[2500:], verbose=0)
print(f"fit's accuracy {history.history['accuracy'][-1]:.3f}, held-out {accuracy:.3f}")
