"""Healthy twin: the same LSTM many-to-many regression, TimeDistributed(Dense(1)) output, Adam.

Source: https://github.com/keras-team/keras/issues/3687 (healthy twin: the usual fix, a linear output
        unit for a regression target that can be negative, and a tamer optimizer)
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import LSTM, Dense, TimeDistributed
from tensorflow.keras.models import Sequential

np.random.seed(16)
tf.random.set_seed(16)

timestep_num, feat_num = 20, 4
X = np.random.randn(640, timestep_num, feat_num).astype("float32")
Y = (np.cumsum(X[:, :, :1], axis=1) * 0.3 - 0.6).astype("float32")

model = Sequential()
model.add(tf.keras.Input((timestep_num, feat_num)))
model.add(LSTM(32, return_sequences=True))
model.add(TimeDistributed(Dense(1)))
model.compile(loss="mean_squared_error", optimizer=tf.keras.optimizers.Adam(3e-3))
BATCH_SIZE = 32
for epoch in range(1, 7):
    for i in range(0, len(X), BATCH_SIZE):
        loss = model.train_on_batch(X[i:i + BATCH_SIZE], Y[i:i + BATCH_SIZE])
    print(f"epoch {epoch}: loss {float(np.ravel(loss)[0]):.4f}")
