"""np.random.randint inside a tf.data map: drawn once as the map is traced, one shift for all.

Reconstructed from Stack Overflow and tensorflow issues ("random augmentation in dataset.map
gives the same value every time"): tf.data traces the map function once, so the NumPy draw in
it is a constant of its graph. Every training image is shifted by the same amount, and the
model fails on test digits at other positions.
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
R, k = 20, 5
protos = (rng.random((k, 6, 6)) > 0.5).astype("float32")


def place(c, dx):
    img = np.zeros((R, R), "float32")
    img[7:13, 7 + dx:13 + dx] = protos[c]
    return img


y_tr = rng.integers(0, k, 400)
x_tr = np.stack([place(c, 0) for c in y_tr])[..., None]            # all centered
y_te = rng.integers(0, k, 1000)
x_te = np.stack([place(c, rng.integers(-6, 7)) for c in y_te])[..., None]  # shifted
x_te += 0.05 * rng.normal(size=x_te.shape).astype("float32")


def augment(img, label):
    shift = np.random.randint(-6, 7)
    img = tf.roll(img, shift=shift, axis=1)
    return img, label


train_ds = (tf.data.Dataset.from_tensor_slices((x_tr, y_tr)).shuffle(400, seed=0)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(32))
model = keras.Sequential([keras.Input((R, R, 1)), keras.layers.Flatten(),
                          keras.layers.Dense(128, activation="relu"), keras.layers.Dense(k)])
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(train_ds, epochs=15, verbose=0)
_, acc = model.evaluate(x_te, y_te, verbose=0)
print(f"METRIC {acc:.4f}")
