"""HEALTHY TWIN of bug_giou_loss_given_center_size_boxes_fit.py: the (cx, cy, w, h) labels are
converted to corners inside the loss, as the predictions are. Otherwise identical.
A tool should stay silent.
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(7)
rng = np.random.default_rng(7)
n, S = 1200, 16
wh = rng.uniform(0.2, 0.5, size=(n, 2))
center = rng.uniform(wh / 2, 1 - wh / 2)
boxes = np.concatenate([center, wh], axis=1).astype("float32")  # cx, cy, w, h (normalized)
grid = (np.arange(S) + 0.5) / S
inside_x = np.abs(grid[None, :] - center[:, :1]) < wh[:, :1] / 2
inside_y = np.abs(grid[None, :] - center[:, 1:]) < wh[:, 1:] / 2
images = 0.3 * rng.normal(size=(n, S, S)) + (inside_y[:, :, None] & inside_x[:, None, :])
images = images.reshape(n, S * S).astype("float32")
x_train, x_test, b_train, b_test = images[:1000], images[1000:], boxes[:1000], boxes[1000:]


def to_corners(b):
    cx, cy, w, h = tf.unstack(b, 4, axis=-1)
    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def giou(b1, b2):
    """GIoU of corner boxes [x1, y1, x2, y2], lengths clipped at 0 (as TF Addons' GIoULoss)."""
    zero = tf.zeros((), b1.dtype)
    b1x1, b1y1, b1x2, b1y2 = tf.unstack(b1, 4, axis=-1)
    b2x1, b2y1, b2x2, b2y2 = tf.unstack(b2, 4, axis=-1)
    a1 = tf.maximum(zero, b1x2 - b1x1) * tf.maximum(zero, b1y2 - b1y1)
    a2 = tf.maximum(zero, b2x2 - b2x1) * tf.maximum(zero, b2y2 - b2y1)
    iw = tf.maximum(zero, tf.minimum(b1x2, b2x2) - tf.maximum(b1x1, b2x1))
    ih = tf.maximum(zero, tf.minimum(b1y2, b2y2) - tf.maximum(b1y1, b2y1))
    inter = iw * ih
    union = a1 + a2 - inter
    enclose = (tf.maximum(b1x2, b2x2) - tf.minimum(b1x1, b2x1)) * (
        tf.maximum(b1y2, b2y2) - tf.minimum(b1y1, b2y1)
    )
    return tf.math.divide_no_nan(inter, union) - tf.math.divide_no_nan(enclose - union, enclose)


def giou_loss(y_true, y_pred):
    return 1.0 - giou(to_corners(y_true), to_corners(y_pred))  # FIX: labels converted too


model = keras.Sequential([
    keras.Input((S * S,)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(4, activation="sigmoid"),  # cx, cy, w, h
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=giou_loss)
model.fit(x_train, b_train, batch_size=32, epochs=6, verbose=0)

p = to_corners(tf.constant(model.predict(x_test, verbose=0))).numpy()
t = to_corners(tf.constant(b_test)).numpy()
iw = np.clip(np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0]), 0, None)
ih = np.clip(np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1]), 0, None)
inter = iw * ih
union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) - inter
print(f"held-out mean IoU: {np.mean(inter / union):.3f}")
