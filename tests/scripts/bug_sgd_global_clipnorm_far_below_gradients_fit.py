"""Symptom: SGD "does not learn" while the same model learns with Adam. The optimizer was given
global_clipnorm=1e-3 (meant as a small learning rate, or copied from a clip on single values): the
gradients' norm is near 1, so every step is scaled down 1000x and moves the weights by at most
lr * 1e-3. The loss changes in the fourth decimal over three epochs.

(Not from one report: the clip-too-tight class of trial 37; Adam with the same clip, and SGD clipped
at 1.0, are healthy: ok_sgd_global_clipnorm_clips_spikes_fit.py.)
expected: update-too-small
"""
import keras
import numpy as np

rng = np.random.default_rng(1)
x = rng.normal(size=(4000, 32)).astype("float32")
w = rng.normal(size=(32, 10)).astype("float32")
y = np.argmax(x @ w + rng.normal(size=(4000, 10)), axis=1)

model = keras.Sequential(
    [keras.Input((32,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)]
)
model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=0.01, global_clipnorm=1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x, y, batch_size=64, epochs=3, validation_split=0.1, verbose=2)
