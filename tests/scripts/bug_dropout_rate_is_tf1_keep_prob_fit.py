"""A TF1 model ported to Keras: keep_prob=0.9 became Dropout(0.9), which drops 9 units in 10.

Reconstructed from Stack Overflow reports ("my model predicts the same class for every input
after porting from TF1", "Dropout rate vs keep_prob"): tf.nn.dropout(x, keep_prob=0.9) keeps 90%
of the units, keras.layers.Dropout(rate) drops that share. With 0.9 the classifier ends at the
majority class for every example while its training loss still falls a little each epoch.
"""

import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
w = rng.normal(size=(12, 3)).astype("float32")


def make(n):
    x = rng.normal(size=(n, 12)).astype("float32")
    y = np.argmax(x @ w / np.sqrt(12) + rng.normal(size=(n, 3)) + [1.0, 0.0, -0.5], axis=1)
    return x, y


x_train, y_train = make(1200)
x_test, y_test = make(600)
KEEP_PROB = 0.9
model = keras.Sequential(
    [
        keras.Input((12,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(KEEP_PROB),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(KEEP_PROB),
        keras.layers.Dense(3),
    ]
)
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
history = model.fit(x_train, y_train, batch_size=16, epochs=4, verbose=0)
print("train loss", [round(v, 3) for v in history.history["loss"]])
print("test accuracy", model.evaluate(x_test, y_test, verbose=0)[1])
