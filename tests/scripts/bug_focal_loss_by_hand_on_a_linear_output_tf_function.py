"""Reported symptom: "my focal loss stalls and the minority class is never recalled". A binary
focal loss written by hand clips y_pred to [eps, 1 - eps] (against log(0)) and picks p or 1 - p
by the label, on a model whose last Dense has no sigmoid: every raw output outside [eps, 1 -
eps] gets exactly zero gradient through the clip, and positives stuck below 0 never recover.

Source: https://github.com/tensorflow/addons/issues/693, hunt28 b10
expected: from-logits-mismatch
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(10)
rng = np.random.default_rng(10)
N, D = 4096, 16
x = rng.normal(size=(N, D)).astype("float32")
score = x[:, 0] + 0.8 * x[:, 1] - 0.6 * x[:, 2] * x[:, 3]
y = (score > 1.3).astype("float32")[:, None]  # ~15% positives
xv = rng.normal(size=(1024, D)).astype("float32")
yv = ((xv[:, 0] + 0.8 * xv[:, 1] - 0.6 * xv[:, 2] * xv[:, 3]) > 1.3).astype("float32")[:, None]

model = keras.Sequential(
    [keras.Input((D,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
EPS = 1e-7


def focal_loss(y_true, y_pred, alpha=0.25, gamma=2.0):
    y_pred = tf.clip_by_value(y_pred, EPS, 1.0 - EPS)
    pt = tf.where(tf.equal(y_true, 1.0), y_pred, 1.0 - y_pred)
    a = tf.where(tf.equal(y_true, 1.0), alpha, 1.0 - alpha)
    return tf.reduce_mean(-a * tf.pow(1.0 - pt, gamma) * tf.math.log(pt))


optimizer = keras.optimizers.Adam(1e-3)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N, seed=10).batch(64)
losses = []


@tf.function
def step(xb, yb):
    with tf.GradientTape() as tape:
        loss = focal_loss(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for _ in range(4):
    for xb, yb in ds:
        losses.append(float(step(xb, yb)))
p = model.predict(xv, verbose=0)
hard = (p > 0.5).astype("float32")
recall = float((hard * yv).sum() / yv.sum())
tnr = float(((1 - hard) * (1 - yv)).sum() / (1 - yv).sum())
ranks = np.argsort(np.argsort(p[:, 0])) + 1
npos = yv.sum()
auc = float((ranks[yv[:, 0] > 0].sum() - npos * (npos + 1) / 2) / (npos * (len(yv) - npos)))
print(
    f"METRIC first_loss={np.mean(losses[:10]):.4f} loss={np.mean(losses[-10:]):.4f} val_auc={auc:.3f} "
    f"val_recall={recall:.3f} val_tnr={tnr:.3f} balanced_acc={(recall + tnr) / 2:.3f}"
)
