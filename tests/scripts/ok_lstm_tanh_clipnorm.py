"""Healthy twin: a long-sequence recurrent classifier, LSTM with its default tanh activation, Adam with
clipnorm=1.0.

Sources: https://github.com/keras-team/keras/issues/5127 and /2194 (healthy twin: a bounded (tanh)
         recurrence and gradient clipping, as suggested in both threads)
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import LSTM, Dense
from tensorflow.keras.models import Sequential

np.random.seed(21)
tf.random.set_seed(21)

T, F = 150, 8
x = np.random.rand(512, T, F).astype("float32")
y = np.eye(2, dtype="float32")[(x[:, -5:, 0].mean(axis=1) > 0.5).astype("int64")]

model = Sequential()
model.add(tf.keras.Input((T, F)))
model.add(LSTM(32))
model.add(Dense(2, activation="softmax"))
model.compile(loss="categorical_crossentropy", optimizer=tf.keras.optimizers.Adam(3e-3, clipnorm=1.0), metrics=["accuracy"])
hist = model.fit(x, y, epochs=6, batch_size=32, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
print("accuracy per epoch:", [round(v, 3) for v in hist.history["accuracy"]])
