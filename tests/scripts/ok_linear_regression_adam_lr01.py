"""Healthy one-feature linear regression (TF "basic regression" tutorial): Adam(0.1), MAE, fit."""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(36)

horsepower = np.random.uniform(50, 230, size=(314, 1)).astype("float32")
mpg = (45.0 - 0.16 * horsepower + np.random.normal(0, 3, size=(314, 1))).astype("float32")

horsepower_normalizer = tf.keras.layers.Normalization(input_shape=[1], axis=None)
horsepower_normalizer.adapt(horsepower)

horsepower_model = tf.keras.Sequential([horsepower_normalizer, tf.keras.layers.Dense(units=1)])
horsepower_model.compile(
    optimizer=tf.keras.optimizers.Adam(learning_rate=0.1), loss="mean_absolute_error"
)
history = horsepower_model.fit(horsepower, mpg, epochs=30, verbose=0, validation_split=0.2)
print("final loss", history.history["loss"][-1])
