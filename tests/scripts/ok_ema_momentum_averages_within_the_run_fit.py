"""Healthy twin of bug_ema_momentum_outlasts_the_run_fit: the EMA averages about 100 updates
(ema_momentum=0.99, Keras' default), so the average fit puts into the model when it returns
is the trained weights, smoothed.
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
optimizer = keras.optimizers.Adam(2e-3, use_ema=True, ema_momentum=0.99)
model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x[:2500], y[:2500], batch_size=32, epochs=8, verbose=0)
_, accuracy = model.evaluate(x[2500:], y[2500:], verbose=0)
print(f"fit's accuracy {history.history['accuracy'][-1]:.3f}, held-out {accuracy:.3f}")
