"""Reported symptom: "my random-shift augmentation does nothing after moving to Keras 3". The
layer, ported from tf.random.uniform(..., seed=s) to keras.random.randint(..., seed=s), draws
with an integer seed: Keras 3's random functions are then stateless, and every batch is shifted
by the same (dy, dx). The classifier never sees other positions and fails on shifted images.

Source: https://keras.io/api/random/seed_generator/ ("if you pass an integer seed ... they
        will return the same values for repeated calls"), hunt28 b12
expected: random-frozen-at-trace
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(12)
rng = np.random.default_rng(12)
S, M = 16, 4


def glyph(c, cy, cx):
    img = np.zeros((S, S), np.float32)
    if c == 0:
        img[cy - 2 : cy + 3, cx] = 1
        img[cy, cx - 2 : cx + 3] = 1
    elif c == 1:
        img[cy - 2 : cy + 3, [cx - 2, cx + 2]] = 1
        img[[cy - 2, cy + 2], cx - 2 : cx + 3] = 1
    else:
        for k in range(-2, 3):
            img[cy + k, cx + k] = 1
            img[cy + k, cx - k] = 1
    return img


def make(n, jitter):
    yy = rng.integers(0, 3, n)
    off = rng.integers(-jitter, jitter + 1, (n, 2)) if jitter else np.zeros((n, 2), int)
    xx = np.stack([glyph(c, 8 + o[0], 8 + o[1]) for c, o in zip(yy, off)])
    return (xx + rng.normal(0, 0.05, xx.shape)).astype("float32")[..., None], yy


x, y = make(600, 0)  # training glyphs always centred
xv, yv = make(600, M)  # held-out glyphs anywhere within +-4 px


class RandomShift(keras.layers.Layer):
    def __init__(self, max_shift, seed, **kw):
        super().__init__(**kw)
        self.max_shift = max_shift
        self.rng_seed = seed

    def call(self, images, training=None):
        if not training:
            return images
        dy = keras.random.randint((), -self.max_shift, self.max_shift + 1, seed=self.rng_seed)
        dx = keras.random.randint((), -self.max_shift, self.max_shift + 1, seed=self.rng_seed + 1)
        return tf.roll(tf.roll(images, dy, axis=1), dx, axis=2)


model = keras.Sequential(
    [
        keras.Input((S, S, 1)),
        RandomShift(M, seed=1234),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(3),
    ]
)
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
hist = model.fit(x, y, batch_size=32, epochs=12, verbose=0)
val_acc = float((model.predict(xv, verbose=0).argmax(1) == yv).mean())
print(
    f"METRIC loss={hist.history['loss'][-1]:.4f} train_acc={hist.history['accuracy'][-1]:.3f} "
    f"shifted_val_acc={val_acc:.3f}"
)
