"""Healthy twin of bug_pixels_divided_by_255_twice_fit: the pixels are divided by 255 once
(test accuracy 1.00 against 0.49).

expected: no findings
"""

import keras
import numpy as np

rng = np.random.default_rng(3)
keras.utils.set_random_seed(3)
# 8x8 "images", 0..255 pixels; the class is which quadrant is brightest
n = 3000
imgs = rng.integers(0, 120, size=(n, 8, 8)).astype("float32")
y = rng.integers(0, 4, size=n)
for i, c in enumerate(y):
    r, q = divmod(int(c), 2)
    imgs[i, 4 * r:4 * r + 4, 4 * q:4 * q + 4] += rng.integers(40, 136)


def load_images():
    return imgs / 255.0  # scaled once here ...


x = load_images().reshape(n, 64)
x_tr, y_tr, x_te, y_te = x[:2400], y[:2400], x[2400:], y[2400:]

model = keras.Sequential([
    keras.Input((64,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(4, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
hist = model.fit(x_tr, y_tr, batch_size=32, epochs=3, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
print("test accuracy:", round(float(model.evaluate(x_te, y_te, verbose=0)[1]), 4))
