"""OK: the global seed's tf.random.uniform in Dataset.map, the data set repeated for ever.

The twin of bug_augmentation_seeded_by_global_seed_fit.py with `.repeat()` and
steps_per_epoch: fit reads one iterator through every epoch, so the seeded op's stream goes on
and each image gets a new shift every epoch (hunt34 f06: tensorflow#47755's fix written this
way drew 0 repeated shifts between epochs)."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
S = 16
def shape(c):
    img = np.zeros((S, S), np.float32)
    cy, cx = rng.integers(5, 11, 2)
    if c == 0:
        img[cy - 3:cy + 4, cx] = 1  # plus
        img[cy, cx - 3:cx + 4] = 1
    elif c == 1:
        img[cy - 3:cy + 4, [cx - 3, cx + 3]] = 1  # box
        img[[cy - 3, cy + 3], cx - 3:cx + 4] = 1
    else:
        for k in range(-3, 4):
            img[cy + k, cx + k] = 1  # x
            img[cy + k, cx - k] = 1
    return img
def make(n):
    y = rng.integers(0, 3, n)
    x = np.stack([shape(c) for c in y])[..., None]
    x = x + rng.normal(0, 0.2, x.shape)
    return x.astype(np.float32), y.astype(np.int32)
x_tr, y_tr = make(240)
x_te, y_te = make(1500)

def random_shift(img, label):
    d = tf.random.uniform([2], -4, 5, dtype=tf.int32)  # seeded, but never restarted
    return tf.roll(img, shift=d, axis=[0, 1]), label

ds = tf.data.Dataset.from_tensor_slices((x_tr, y_tr))
ds = ds.cache().map(random_shift)
ds = ds.shuffle(240).batch(16).repeat()

model = keras.Sequential([keras.Input((S, S, 1)),
                          keras.layers.Flatten(),
                          keras.layers.Dense(128, activation="relu"),
                          keras.layers.Dense(3)])
model.compile(keras.optimizers.Adam(1e-3),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(ds, epochs=25, steps_per_epoch=15, verbose=0)
print("test accuracy:", model.evaluate(x_te, y_te, verbose=0)[1])
