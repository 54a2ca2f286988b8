"""Healthy twin of the bug reported in the source below: the same training, done right.

Source: http://pullrequest.ru/14126136/polzovatelskaya-funktsiya-poter-dlya-prognozirovaniya-vyhodnyh-dannyh-interget
        and https://datascience.stackexchange.com/questions/38604/too-low-accuracy-on-mnist-dataset-using-a-neural-network
        (healthy twin: the accepted answers -- 10 softmax outputs, sparse categorical cross-entropy)
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import Dense
from tensorflow.keras.models import Sequential

np.random.seed(26)
tf.random.set_seed(26)

input_nodes = 64
templates = np.random.rand(10, input_nodes).astype("float32")
y_train = np.random.randint(0, 10, size=3000)
X_train = np.clip(templates[y_train] + 0.1 * np.random.randn(3000, input_nodes), 0, 1).astype("float32")

model = Sequential()
model.add(tf.keras.Input((input_nodes,)))
model.add(Dense(64, activation="relu"))
model.add(Dense(10, activation="softmax"))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x=X_train, y=y_train, verbose=0, epochs=6)
print("loss per epoch:", [round(v, 4) for v in history.history["loss"]])
print("accuracy per epoch:", [round(v, 4) for v in history.history["accuracy"]])
