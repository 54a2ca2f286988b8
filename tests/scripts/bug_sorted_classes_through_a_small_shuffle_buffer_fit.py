"""Bug: data stored class by class, shuffled by a buffer of 64 before batching.

A shuffle buffer far smaller than the data set mixes only neighbours: most batches are still
mostly one class, the classes arrive in turn, and the model chases the current one and forgets
the rest (held-out accuracy 0.65 against 0.88 with a full buffer, in the report's setting).

Source: https://github.com/tensorflow/tensorflow/issues/36626,
        https://github.com/IBM/graph2tac/pull/95 (hunt33 b04)
expected: batches-one-class
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
centers = rng.normal(size=(3, 20))
labels = np.sort(rng.integers(0, 3, size=2400))  # exported one class after another
x = (centers[labels] + rng.normal(size=(2400, 20)) * 1.3).astype("float32")

train = tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(buffer_size=64, seed=0).batch(32)
model = keras.Sequential(
    [keras.Input((20,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3, activation="softmax")]
)
model.compile(keras.optimizers.Adam(5e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train, epochs=2, verbose=2)
