"""The transfer-learning recipe (freeze the base, train a new head) applied to a base that was
never trained: as with `keras.applications.MobileNetV2(weights=None, include_top=False)`, or a
`load_weights` that was skipped. The head learns from fixed random features: test accuracy
0.26 (chance 0.25) against 0.9 for the twin, whose base was trained before it was frozen.
Keras' guide freezes pretrained bases only: https://keras.io/guides/transfer_learning/
"""

import keras
import numpy as np

keras.utils.set_random_seed(31)
rng = np.random.default_rng(31)


def image(c):
    """A 16x16 image of a horizontal bar, a vertical bar, a ring or a cross (class c)."""
    a = np.zeros((16, 16), "float32")
    r, q = rng.integers(3, 12, 2)
    if c == 0:
        a[r, q - 3 : q + 4] = 1
    elif c == 1:
        a[r - 3 : r + 4, q] = 1
    elif c == 2:
        a[r - 2 : r + 3, q - 2 : q + 3] = 1
        a[r - 1 : r + 2, q - 1 : q + 2] = 0
    else:
        a[r, q - 2 : q + 3] = 1
        a[r - 2 : r + 3, q] = 1
    return a


n = 2400
y = rng.integers(0, 4, n)
x = (np.stack([image(c) for c in y]) + rng.normal(0, 0.2, (n, 16, 16))).astype("float32")
x = x[..., None]
base = keras.Sequential(
    [
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(16),
    ],
    name="base",
)
base.trainable = False  # BUG: nothing was ever loaded into the base
model = keras.Sequential(
    [base, keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4, activation="softmax")]
)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:2000], y[:2000], batch_size=32, epochs=3, verbose=2)
accuracy = np.mean(model.predict(x[2000:], verbose=0).argmax(1) == y[2000:])
print("FINAL test accuracy", float(accuracy), "(chance 0.25)")
