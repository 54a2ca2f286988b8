"""Healthy: a logistic regression on labels with 25% flipped is fit to its plateau (loss 0.61,
accuracy 0.73 of a best 0.75), then compiled with a new Adam(1e-4) and fit again: the second
stage starts on the weights the first one trained and rightly holds its loss.

(Trial 39's false-alarm hunt: judged as a fresh run, the second optimizer was told its loss had
not decreased; a stage on weights an earlier optimizer trained is a resumed run.)
"""
import keras
import numpy as np

keras.utils.set_random_seed(2)
rng = np.random.default_rng(2)
x = rng.normal(size=(2000, 5)).astype("float32")
y = (x[:, 0] > 0).astype("float32")
flipped = rng.random(2000) < 0.25
y[flipped] = 1 - y[flipped]
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=5, verbose=2)
model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=5, verbose=2)
