"""Reported symptom: "my U-Net's loss goes down but it predicts all background". The tf.data
pipeline applies the image preprocessing (cast, / 255) to the mask too, and the masks were
stored as 0 and 1: the targets become {0, 1/255}, and the binary cross-entropy is minimized by
predicting about 0.004 everywhere.

Source: https://github.com/qubvel/segmentation_models/issues/233,
        https://github.com/datvuthanh/HybridNets/issues/60, hunt28 b04
expected: labels-out-of-range
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(4)
rng = np.random.default_rng(4)
S = 16


def make(n):
    img = rng.integers(0, 90, (n, S, S, 1)).astype("uint8")
    m = np.zeros((n, S, S, 1), "uint8")
    for i in range(n):
        h, w = rng.integers(3, 8, 2)
        r, c = rng.integers(0, S - h), rng.integers(0, S - w)
        m[i, r : r + h, c : c + w] = 1
    img = np.where(m > 0, img + 120, img).astype("uint8")  # object is brighter
    return img, m


x, m = make(1024)
xv, mv = make(256)


def preprocess(image, mask):
    image = tf.cast(image, tf.float32) / 255.0
    mask = tf.cast(mask, tf.float32) / 255.0
    return image, mask


train_ds = (
    tf.data.Dataset.from_tensor_slices((x, m)).map(preprocess).shuffle(1024, seed=4).batch(32)
)
model = keras.Sequential(
    [
        keras.Input((S, S, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(1, 1, activation="sigmoid"),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
hist = model.fit(train_ds, epochs=4, verbose=0)
p = model.predict(xv.astype("float32") / 255.0, verbose=0)
hard = (p > 0.5).astype("float32")
inter = (hard * mv).sum((1, 2, 3))
iou = float(np.mean(inter / ((hard + mv) > 0).sum((1, 2, 3)).clip(1)))
print(
    f"METRIC first_loss={hist.history['loss'][0]:.4f} loss={hist.history['loss'][-1]:.4f} "
    f"val_iou={iou:.3f} mean_pred_fg={float(p[mv > 0].mean()):.4f}"
)
