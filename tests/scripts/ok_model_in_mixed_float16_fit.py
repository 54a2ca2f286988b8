"""Healthy twin of bug_model_in_float16_by_set_floatx_fit.py: mixed precision computes in
float16 and keeps the variables (and Adam's slots) in float32; fit scales the loss.

expected: (none)
"""

import keras
import numpy as np

keras.mixed_precision.set_global_policy("mixed_float16")
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
CLASSES, DIM = 4, 20
w = rng.normal(size=(DIM, CLASSES))


def make(n):
    x = rng.normal(size=(n, DIM))
    y = np.argmax(x @ w + 0.5 * np.sin(3 * x[:, :CLASSES]), axis=1)
    return x.astype("float32"), y


x_train, y_train = make(2048)
x_test, y_test = make(1000)
model = keras.Sequential(
    [
        keras.Input((DIM,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(CLASSES, dtype="float32"),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
history = model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0).history["loss"]
print("loss per epoch", [round(v, 3) for v in history])
accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test)
print(f"held-out accuracy: {accuracy:.3f}")
