"""Symptom: training accuracy climbs to 90%, val_accuracy stays at 0. The examples were collected
class by class (one folder per class) and passed to fit unshuffled with validation_split=0.25:
Keras takes the last 25% of the arrays as they are, so the validation set is the last class, which
the training part never has (fit's shuffle=True shuffles the training part only, after the split).

(A classic report; trial 39's held-out bug. The healthy twin shuffles x and y together first:
ok_validation_split_after_shuffle_fit.py.)
expected: loss-not-decreasing
"""
import keras
import numpy as np

rng = np.random.default_rng(5)
pool = rng.normal(size=(20000, 16)).astype("float32")
pool_y = np.argmax(np.tanh(pool @ rng.normal(size=(16, 32))) @ rng.normal(size=(32, 4)), axis=1)
x = np.concatenate([pool[pool_y == c][:500] for c in range(4)])  # ordered by class
y = np.repeat(np.arange(4), 500)

keras.utils.set_random_seed(5)
model = keras.Sequential(
    [keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
)
model.compile(
    optimizer="adam",
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x, y, validation_split=0.25, batch_size=32, epochs=4, verbose=2)
