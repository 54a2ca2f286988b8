"""Reported symptom: "fp16 doesn't work: the loss falls but accuracy stays poor". set_floatx
makes every weight, the optimizer's slots and its update arithmetic float16: Adam's squared
gradients underflow to 0 and its first steps jump by lr / epsilon, and later small updates
round away (first epoch's loss 9.95 against 1.18; held-out accuracy 0.61 against 0.89 in
mixed precision).

Source: https://github.com/keras-team/keras/issues/11853,
        https://github.com/keras-team/keras/issues/4032, hunt30 b08
expected: weights-half-precision
"""

import keras
import numpy as np

keras.config.set_floatx("float16")
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
CLASSES, DIM = 4, 20
w = rng.normal(size=(DIM, CLASSES))


def make(n):
    x = rng.normal(size=(n, DIM))
    y = np.argmax(x @ w + 0.5 * np.sin(3 * x[:, :CLASSES]), axis=1)
    return x.astype(keras.config.floatx()), y


x_train, y_train = make(2048)
x_test, y_test = make(1000)
model = keras.Sequential(
    [
        keras.Input((DIM,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(CLASSES),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
history = model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0).history["loss"]
print("loss per epoch", [round(v, 3) for v in history])
accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test)
print(f"held-out accuracy: {accuracy:.3f}")
