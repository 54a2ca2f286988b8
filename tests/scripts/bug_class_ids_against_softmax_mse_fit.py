"""Reported symptom: a binary classifier with a two-unit softmax output, compiled with `mse`
and fed its 0/1 labels as an (n, 1) column (as df[["label"]].values gives them), reports a
falling loss but about 50% accuracy, and predicts 0.5 / 0.5 for everything. The (n, 1) labels
are broadcast against both softmax units, so the loss asks both probabilities to equal the
label; as they sum to 1, the best the model can do is 0.5 / 0.5 whatever the input. Keras 3
raises for the cross-entropies here, not for mse or mae.

Sources: https://github.com/tensorflow/tensorflow/issues/37770 (Keras' MSE silently broadcasts
         labels and predictions of different shapes: "Silent errors like this are difficult to
         debug")
         https://github.com/apache/mxnet/pull/1582 (labels (128, 1) against predictions
         (128, 10) in a squared error: broadcastable, so nothing stops it)
expected: loss-broadcast
"""

import keras
import numpy as np

SPARSE = False  # the healthy twin reads the class ids with a sparse cross-entropy

rng = np.random.default_rng(6)
keras.utils.set_random_seed(6)
x = rng.normal(size=(1500, 12)).astype("float32")
label = (x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] > 0).astype("int32")
y = label.reshape(-1, 1)  # an (n, 1) column of class ids
x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]

model = keras.Sequential(
    [
        keras.Input((12,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy" if SPARSE else "mse")
history = model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0)
print("loss per epoch:", [round(v, 4) for v in history.history["loss"]])
predicted = model.predict(x_test, verbose=0)
print("test accuracy (argmax):", round(float((predicted.argmax(axis=1) == y_test[:, 0]).mean()), 3))
