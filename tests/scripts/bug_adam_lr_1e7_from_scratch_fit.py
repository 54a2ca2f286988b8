"""Reported symptom: a network trained from scratch (random initialisation) with Adam(learning_rate=1e-7)
-- an exponent typo for 1e-3 --: every update moves the weights by ~1e-7, the loss changes in the
fourth decimal over ten epochs. (A fine-tuning rate of 1e-5 on a trained model is healthy; this is a
fresh model that has everything to learn.)

Source: https://github.com/keras-team/keras/issues/2711 ("Loss not changing when training"; comment by
        DiyuanLu: "I had the same problem. But for me it is just the learning_rate is too small. Try
        with a bigger learning_rate")
expected: loss-not-decreasing
"""
import numpy as np
import tensorflow as tf

np.random.seed(33)
tf.random.set_seed(33)

x = np.random.rand(2000, 1, 16, 16).astype("float32")
y = (x[:, 0, :8].mean(axis=(1, 2)) > x[:, 0, 8:].mean(axis=(1, 2))).astype("float32")

model = tf.keras.Sequential([
    tf.keras.Input((1, 16, 16)),
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(64, activation="relu"),
    tf.keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=1e-7), loss="binary_crossentropy", metrics=["accuracy"])
hist = model.fit(x, y, epochs=10, batch_size=32, verbose=0)
print("loss per epoch:", [round(v, 5) for v in hist.history["loss"]])
print("accuracy per epoch:", [round(v, 3) for v in hist.history["accuracy"]])
