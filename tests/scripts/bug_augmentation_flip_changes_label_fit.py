"""RandomFlip("horizontal") on a task whose label is left or right (an arrow's direction): every
training image is flipped half the time with its label unchanged, so the best the model can do
is 0.5: the loss sits at ln 2 and test accuracy at chance (0.49 against 1.0 for the twin, which
flips vertically). The flip layer is named among the suspects of the chance-level loss.
"""

import keras
import numpy as np

keras.utils.set_random_seed(26)
rng = np.random.default_rng(26)


def arrow(right):
    """A 16x16 arrow pointing right or left: a filled triangle and a shaft."""
    a = np.zeros((16, 16), "float32")
    r, c = rng.integers(4, 12), rng.integers(5, 11)
    for k in range(4):
        cc = c + k if right else c - k
        a[r - 3 + k : r + 4 - k, cc] = 1
    a[r, (c - 4 if right else c + 1) : (c if right else c + 5)] = 1
    return a


n = 2400
y = rng.integers(0, 2, n)
x = (np.stack([arrow(v == 1) for v in y]) + rng.normal(0, 0.2, (n, 16, 16))).astype("float32")
model = keras.Sequential(
    [
        keras.Input((16, 16, 1)),
        keras.layers.RandomFlip("horizontal", seed=3),  # BUG: flips the label's direction
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
model.fit(x[:2000, ..., None], y[:2000], batch_size=32, epochs=8, verbose=2)
predicted = model.predict(x[2000:, ..., None], verbose=0)[:, 0] > 0.5
print("FINAL test accuracy", float(np.mean(predicted == y[2000:])), "(chance 0.5)")
