"""Healthy twin: the same binary classifier with Dense(1, activation='sigmoid'); loss falls, accuracy
rises.

Source: https://github.com/keras-team/keras/issues/2711 (healthy twin: the accepted fix, sigmoid on
        the single output unit)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(13)
tf.random.set_seed(13)

x = np.random.randn(2000, 12).astype("float32")
y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype("float32")

model = tf.keras.Sequential([
    tf.keras.Input((12,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(16, activation="relu"),
    tf.keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
hist = model.fit(x, y, epochs=5, batch_size=32, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
print("accuracy per epoch:", [round(v, 4) for v in hist.history["accuracy"]])
