"""Healthy: a TF1 model ported to Keras, keep_prob=0.9 written as Dropout(1 - 0.9).

The twin of bug_dropout_rate_is_tf1_keep_prob_fit: tf.nn.dropout(x, keep_prob=0.9) keeps 90% of
the units, so its Keras rate is 1 - 0.9. The classifier learns beyond the majority class.
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
        keras.layers.Dropout(1 - KEEP_PROB),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(1 - KEEP_PROB),
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
