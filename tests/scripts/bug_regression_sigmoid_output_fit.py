"""A regression model ending in a sigmoid, fitted to targets between 10 and 90.

The output cannot pass 1: it saturates, its gradients vanish, and the model predicts about 1
for every input. (Stack Overflow: "regression model predicts the same value for every input".)
"""

import numpy as np
from tensorflow import keras

np.random.seed(4)
x = np.random.rand(1024, 6).astype("float32")
y = (50 * x[:, 0] + 30 * x[:, 1] + 10).astype("float32")
model = keras.Sequential(
    [
        keras.Input(shape=(6,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),  # the bug: a classifier's output
    ]
)
model.compile(optimizer="adam", loss="mse")
history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
print("loss", [round(v, 1) for v in history.history["loss"]])
