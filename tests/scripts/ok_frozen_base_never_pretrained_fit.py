"""Twin of bug_frozen_base_never_pretrained_fit.py: the base is trained first (with a head of
its own), then frozen under a new head: transfer learning as meant. Healthy: silent."""

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
# "Pretraining": the base learns the task with a head of its own, then is frozen.
pretrain = keras.Sequential([base, keras.layers.Dense(4, activation="softmax")])
pretrain.compile("adam", "sparse_categorical_crossentropy")
pretrain.fit(x[:2000], y[:2000], batch_size=32, epochs=2, verbose=0)
base.trainable = False
model = keras.Sequential(
    [base, keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4, activation="softmax")]
)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:2000], y[:2000], batch_size=32, epochs=3, verbose=2)
accuracy = np.mean(model.predict(x[2000:], verbose=0).argmax(1) == y[2000:])
print("FINAL test accuracy", float(accuracy), "(chance 0.25)")
