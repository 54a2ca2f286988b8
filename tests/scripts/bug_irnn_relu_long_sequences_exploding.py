"""Reported symptom: an unbounded ReLU recurrence over 150 steps: the gradient norm is in the thousands
from the first batch, the first SGD updates blow the weights up and the loss is nan after a few steps.

Sources: https://github.com/keras-team/keras/issues/2194 ("Nan acc in A LSTM model with ReLU
         activations": sequences of up to 1019 steps, "When I fit it ... I get a loss of nan")
         https://github.com/keras-team/keras/issues/5127 ("why do the loss equal nan when i don't use
         clipnorm?" -- "the gradient gets really really large, which changes the weight values a LOT")
         the IRNN recipe of the old keras example examples/mnist_irnn.py (SimpleRNN, relu,
         recurrent_initializer=Identity, kernel_initializer=RandomNormal(stddev=0.001)), which used
         RMSprop at 1e-6; here plain SGD at 1e-2 and a slightly expanding recurrence.
expected: non-finite (the forward pass of the RNN cell overflows)
"""
import numpy as np
import tensorflow as tf
from tensorflow.keras import initializers
from tensorflow.keras.layers import Dense, SimpleRNN
from tensorflow.keras.models import Sequential

np.random.seed(21)
tf.random.set_seed(21)

T, F, hidden_units = 150, 8, 64
x = np.random.rand(512, T, F).astype("float32")
y = np.eye(2, dtype="float32")[(x[:, -5:, 0].mean(axis=1) > 0.5).astype("int64")]

model = Sequential()
model.add(tf.keras.Input((T, F)))
model.add(SimpleRNN(hidden_units,
                    kernel_initializer=initializers.RandomNormal(stddev=0.001),
                    recurrent_initializer=initializers.Identity(gain=1.03),
                    activation="relu"))
model.add(Dense(2, activation="softmax"))
model.compile(loss="categorical_crossentropy", optimizer=tf.keras.optimizers.SGD(learning_rate=1e-2), metrics=["accuracy"])
hist = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
print("loss per epoch:", hist.history["loss"])
