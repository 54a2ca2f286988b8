"""Images fed as raw 0..255 floats (no /255) to a small CNN trained with SGD(0.01).

symptom: the loss jumps to huge values / NaN in the first steps, accuracy stays at chance (0.25).
why: inputs ~255 make the first conv's pre-activations and gradients ~255x (and the first-layer
gradient ~255^2x) larger than for [0,1] inputs, so SGD(0.01) overshoots and the weights blow up.
Source: no single URL (very common: "forgot to normalize MNIST, accuracy 10%").
expected: loss-not-decreasing and dead-units, naming the pixels never scaled
"""

import keras
import numpy as np

rng = np.random.default_rng(9)
keras.utils.set_random_seed(9)
n = 2400
labels = rng.integers(0, 4, size=n)
img = rng.integers(0, 120, size=(n, 16, 16, 1)).astype("float32")
for i, c in enumerate(labels):  # class = which quadrant holds a bright square
    r, q = divmod(int(c), 2)
    img[i, 8 * r + 2:8 * r + 6, 8 * q + 2:8 * q + 6, 0] += 135
x = img  # raw 0..255 pixels

model = keras.Sequential([
    keras.Input((16, 16, 1)),
    keras.layers.Conv2D(8, 3, activation="relu"),
    keras.layers.MaxPooling2D(),
    keras.layers.Flatten(),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(4, activation="softmax"),
])
model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:2000], labels[:2000], batch_size=32, epochs=4, verbose=2)
print("test accuracy:", round(float(model.evaluate(x[2000:], labels[2000:], verbose=0)[1]), 3))
