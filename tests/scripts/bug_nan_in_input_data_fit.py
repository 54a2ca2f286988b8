"""model.fit on a table whose missing values were left as NaN: the weights turn NaN at once."""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(34)

n = 600
table = np.random.randn(n, 7).astype("float32")
table[np.random.rand(n, 7) < 0.02] = np.nan  # a few missing entries, never imputed
target = np.nan_to_num(table[:, :1]) * 2.0 + 1.0

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(7,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
model.compile(optimizer="adam", loss="mse")
model.fit(table, target, batch_size=32, epochs=3, verbose=2)
