"""Reported symptom: after some batches every prediction is exactly 0 and stays 0: the output ReLU unit
is dead for every input, its gradient and the gradient of everything below it are zero.

Source: https://github.com/keras-team/keras/issues/3687 ("Predictions are all zero": an LSTM
        many-to-many regression ending in TimeDistributed(Dense(1, activation='relu')), trained with
        SGD(lr=0.01, momentum=0.99, nesterov=True) by train_on_batch)
expected: zero-gradient (every gradient stalls at zero once the output ReLU dies)
"""
import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import LSTM, Dense, TimeDistributed
from tensorflow.keras.models import Sequential
from tensorflow.keras.optimizers import SGD

np.random.seed(16)
tf.random.set_seed(16)

timestep_num, feat_num = 20, 4
X = np.random.randn(640, timestep_num, feat_num).astype("float32")
# targets mostly negative (a regression of a signed quantity)
Y = (np.cumsum(X[:, :, :1], axis=1) * 0.3 - 0.6).astype("float32")


def RNN_keras(feat_num, timestep_num=100):
    model = Sequential()
    model.add(tf.keras.Input((timestep_num, feat_num)))
    model.add(LSTM(32, activation="relu", return_sequences=True))
    model.add(TimeDistributed(Dense(1, activation="relu")))
    sgd = SGD(learning_rate=0.01, momentum=0.99, nesterov=True)
    model.compile(loss="mean_squared_error", optimizer=sgd, metrics=["mean_squared_error"])
    return model


rnn = RNN_keras(feat_num, timestep_num)
BATCH_SIZE = 32
for epoch in range(1, 7):
    for i in range(0, len(X), BATCH_SIZE):
        loss = rnn.train_on_batch(X[i:i + BATCH_SIZE], Y[i:i + BATCH_SIZE])
    pred = rnn.predict(X[:64], verbose=0)
    print(f"epoch {epoch}: loss {float(np.ravel(loss)[0]):.4f}  fraction of predictions == 0: {float(np.mean(pred == 0)):.3f}")
