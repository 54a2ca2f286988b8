"""Healthy sequence classifier: Embedding + LSTM trained with model.fit."""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(27)

vocab, length = 200, 20
x = np.random.randint(1, vocab, size=(800, length))
y = (x[:, -3:] < 60).any(axis=1).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.Input((length,), dtype="int32"),
        tf.keras.layers.Embedding(vocab, 16),
        tf.keras.layers.LSTM(16),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, batch_size=32, epochs=4, verbose=2)
