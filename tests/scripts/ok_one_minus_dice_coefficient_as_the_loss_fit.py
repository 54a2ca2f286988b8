"""The healthy twin: the same model compiled with dice_coef_loss = 1 - dice_coef, the Dice score
kept as a metric.

Source: https://ai.stackexchange.com/questions/9890, hunt28 f03
"""

import keras
import numpy as np
from keras import ops

keras.utils.set_random_seed(3)
rng = np.random.default_rng(3)
N, S = 1024, 16


def make(n):
    x = rng.normal(0, 0.3, (n, S, S, 1)).astype("float32")
    m = np.zeros((n, S, S, 1), "float32")
    for i in range(n):
        h, w = rng.integers(3, 8, 2)
        r, c = rng.integers(0, S - h), rng.integers(0, S - w)
        m[i, r : r + h, c : c + w] = 1
    return x + m, m


x, m = make(N)
xv, mv = make(256)


def dice_coef(y_true, y_pred, smooth=1.0):
    y_true = ops.reshape(ops.cast(y_true, "float32"), (ops.shape(y_true)[0], -1))
    y_pred = ops.reshape(y_pred, (ops.shape(y_pred)[0], -1))
    inter = ops.sum(y_true * y_pred, axis=1)
    return ops.mean((2.0 * inter + smooth) / (ops.sum(y_true, 1) + ops.sum(y_pred, 1) + smooth))


def dice_coef_loss(y_true, y_pred):
    return 1.0 - dice_coef(y_true, y_pred)


model = keras.Sequential(
    [
        keras.Input((S, S, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(1, 1, activation="sigmoid"),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=dice_coef_loss, metrics=[dice_coef])
hist = model.fit(x, m, batch_size=32, epochs=4, verbose=0)
p = model.predict(xv, verbose=0)
hard = (p > 0.5).astype("float32")
inter = (hard * mv).sum((1, 2, 3))
iou = float(np.mean(inter / ((hard + mv) > 0).sum((1, 2, 3)).clip(1)))
print(
    f"METRIC first_loss={hist.history['loss'][0]:.4f} loss={hist.history['loss'][-1]:.4f} "
    f"val_iou={iou:.3f} mean_pred_fg={float(p[mv > 0].mean()):.3f} mean_pred_bg={float(p[mv == 0].mean()):.3f}"
)
