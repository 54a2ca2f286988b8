"""Reported symptom: val_accuracy climbs with the training accuracy to 0.9 and more, but the model
scores far lower on data it never saw. The data set was shuffled (reshuffle_each_iteration=True,
the default) and then split with take/skip: every epoch draws a new split, so the model trains
on nearly every validation example over the epochs.

Source: https://github.com/tensorflow/tensorflow/issues/59279 (hunt17)
expected: split-reshuffled
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
prototypes = rng.normal(size=(4, 20))
classes = rng.integers(0, 4, size=2600)
x = (prototypes[classes] + rng.normal(0, 1.3, size=(2600, 20))).astype("float32")
y = np.where(rng.random(2600) < 0.25, rng.integers(0, 4, size=2600), classes)  # label noise
dataset = tf.data.Dataset.from_tensor_slices((x[:2000], y[:2000]))
dataset = dataset.shuffle(2000).batch(50)  # meant: shuffle(2000, reshuffle_each_iteration=False)
train, validation = dataset.take(32), dataset.skip(32)
model = keras.Sequential(
    [
        keras.Input((20,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(4, activation="softmax"),
    ]
)
model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(train, validation_data=validation, epochs=12, verbose=0)
held_out = model.evaluate(x[2000:], y[2000:], verbose=0)[1]
print(f"val_accuracy {history.history['val_accuracy'][-1]:.3f}, held out {held_out:.3f}")
