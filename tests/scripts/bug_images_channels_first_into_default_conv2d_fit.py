"""Reported symptom: "my CNN trains but barely beats chance; the same net in PyTorch gets 100%".
The images are stored channels-first, (N, 3, 32, 32), as a PyTorch-style loader gives them, and
the model is declared with that input shape; Keras' Conv2D reads (height, width, channels), so it
convolves over 3 "rows" and takes the image's 32 columns for channels. Nothing fails.

Source: https://github.com/gdubrg/Eye-Tracking-for-Everyone/issues/5, hunt29 b03
expected: channels-first-input
"""

import keras
import numpy as np

keras.utils.set_random_seed(8)
rng = np.random.default_rng(8)
n, side = 600, 32
shapes = np.zeros((4, 5, 5), dtype="float32")
shapes[0, 2, :] = 1  # a horizontal bar
shapes[1, :, 2] = 1  # a vertical bar
shapes[2][np.eye(5, dtype=bool)] = 1  # a diagonal
shapes[3, 1:4, 1:4] = 1  # a square
y = rng.integers(0, 4, size=n)
x = 0.5 * rng.normal(size=(n, 3, side, side)).astype("float32")  # channels first
colour = rng.uniform(0.5, 1.5, size=(n, 3)).astype("float32")
for i in range(n):
    r, c = rng.integers(0, side - 5, size=2)
    x[i, :, r : r + 5, c : c + 5] += 2.0 * colour[i][:, None, None] * shapes[y[i]][None]

model = keras.Sequential(
    [
        keras.Input(x.shape[1:]),  # (3, 32, 32): 3 rows, 32 columns, 32 channels to Conv2D
        keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
        keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
        keras.layers.GlobalMaxPooling2D(),
        keras.layers.Dense(4),
    ]
)
model.compile(
    optimizer="adam",
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x[:400], y[:400], batch_size=64, epochs=4, verbose=0)
print(f"held-out accuracy: {model.evaluate(x[400:], y[400:], verbose=0)[1]:.3f}")
