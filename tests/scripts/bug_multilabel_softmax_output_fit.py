"""Reported symptom: a multi-label tagger (each example carries several of 6 tags) trained with
binary_crossentropy reports a falling loss and a high binary accuracy, but at a 0.5 threshold it
predicts almost no tags. The output layer is a softmax, copied from a single-label classifier:
its 6 probabilities sum to 1, so of an example's 2-4 tags at most one can pass 0.5. (Keras 3
trains a softmax output under binary_crossentropy on its logits, as it would a sigmoid's: the
loss falls as the twin's does, while predict() returns the softmax.)

Sources: https://stackoverflow.com/questions/44164749 ("How does Keras handle multilabel
         classification?": a sigmoid per label, not a softmax)
         https://stackoverflow.com/questions/41589126 (softmax for several active outputs)
expected: labels-out-of-range
"""

import keras
import numpy as np

SIGMOID = False  # the healthy twin ends in sigmoids (ok_multilabel_sigmoid_output_fit)

rng = np.random.default_rng(10)
keras.utils.set_random_seed(10)
x = rng.normal(size=(1500, 20)).astype("float32")
logits = np.tanh(x @ rng.normal(size=(20, 32))) @ rng.normal(size=(32, 6))
y = (logits > -0.3).astype("float32")  # multi-hot: several tags per example
x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]
print("tags per example:", round(float(y.sum(axis=1).mean()), 2))

model = keras.Sequential(
    [
        keras.Input((20,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(6, activation="sigmoid" if SIGMOID else "softmax"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["binary_accuracy"])
history = model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0)
print("loss per epoch:", [round(v, 4) for v in history.history["loss"]])
predicted = model.predict(x_test, verbose=0) > 0.5
hits = float((predicted & (y_test > 0)).sum())
print("test micro-F1 at 0.5:", round(2 * hits / (predicted.sum() + y_test.sum()), 3))
