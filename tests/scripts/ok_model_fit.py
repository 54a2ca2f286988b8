"""Healthy compile/fit of a small CNN on synthetic 12x12 images."""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(5)

n = 800
images = np.random.rand(n, 12, 12, 1).astype("float32") * 0.2
labels = np.random.randint(0, 2, size=n)
# Class 1 has a bright vertical bar.
images[labels == 1, :, 5:7, 0] += 0.8

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(12, 12, 1)),
        tf.keras.layers.Conv2D(8, 3, activation="relu"),
        tf.keras.layers.MaxPooling2D(),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(images, labels, batch_size=32, epochs=5, validation_split=0.2, verbose=2)
print(model.evaluate(images, labels, verbose=0))
