"""Reported symptom: with one output unit, categorical cross-entropy is -y*log(softmax over a single
logit) = -y*log(1) = 0 for every sample whatever the weights: the loss prints 0.0000 from the first
batch and accuracy stays where the initialisation put it. (Verified under Keras 3: the loss is exactly
0.0 on every step, but the gradient is NOT zero -- Keras routes the sigmoid's logit into
softmax_cross_entropy_with_logits, whose fused gradient softmax - y assumes the labels sum to 1, so
the weights drift on a bogus gradient while the loss cannot move.)

Source: https://github.com/keras-team/keras/issues/14729 ("too low accuracy": breast-cancer data,
        Dense(1, activation="sigmoid") compiled with loss=keras.losses.categorical_crossentropy)
expected: loss-not-decreasing
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

np.random.seed(14)
tf.random.set_seed(14)

X = np.random.randn(569, 30).astype("float32")
w = np.random.randn(30).astype("float32")
y = (X @ w + 0.5 * np.random.randn(569) > 0).astype("float32")
X_train, y_train = X[:400], y[:400]

model3 = keras.Sequential()
model3.add(keras.Input((30,)))
model3.add(layers.Dense(16, activation="relu", kernel_initializer="uniform"))
model3.add(layers.Dropout(0.1))
model3.add(layers.Dense(16, activation="relu", kernel_initializer="uniform"))
model3.add(layers.Dropout(0.1))
model3.add(layers.Dense(1, activation="sigmoid", kernel_initializer="uniform"))
model3.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.categorical_crossentropy, metrics=["accuracy"])
hist = model3.fit(X_train, y_train, batch_size=100, epochs=40, verbose=0)
print("loss every 10 epochs:", [round(v, 5) for v in hist.history["loss"][::10]])
print("accuracy every 10 epochs:", [round(v, 4) for v in hist.history["accuracy"][::10]])
