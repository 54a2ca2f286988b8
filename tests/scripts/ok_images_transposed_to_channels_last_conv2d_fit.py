"""Healthy twin of bug_images_channels_first_into_default_conv2d_fit: the images are stored
channels-first, (N, 3, 32, 32), as a PyTorch-style loader gives them, and are transposed to channels-last, (N, 32, 32, 3), before the model, as Keras' Conv2D expects;
the same shapes, colours and CNN. Its held-out accuracy beats the bug's by far.

Source: https://github.com/gdubrg/Eye-Tracking-for-Everyone/issues/5, hunt29 b03
expected: no finding
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
x = np.transpose(x, (0, 2, 3, 1))  # channels last, as Conv2D reads them

model = keras.Sequential(
    [
        keras.Input(x.shape[1:]),  # (32, 32, 3)
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
