"""HEALTHY TWIN of bug_contrastive_loss_labels_inverted_fit.py: the loss is written in the labels'
convention (1 = similar: y * d**2 + (1 - y) * max(m - d, 0)**2). Otherwise identical.
A tool should stay silent.
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n_classes, dim = 8, 16
centers = rng.normal(size=(n_classes, dim)) * 1.2


def make(n):
    y = rng.integers(0, n_classes, size=n)
    x = (centers[y] + rng.normal(size=(n, dim))).astype("float32")
    return x, y


def make_pairs(x, y, n):
    i = rng.integers(0, len(x), size=n)
    same = rng.random(n) < 0.5
    j = np.empty(n, int)
    for k in range(n):
        pool = np.flatnonzero((y == y[i[k]]) == same[k])
        j[k] = rng.choice(pool)
    return x[i], x[j], same.astype("float32")  # 1 = similar pair


x_train, y_train = make(3000)
x_test, y_test = make(2000)
xa, xb, pair_y = make_pairs(x_train, y_train, 6000)
margin = 1.0


def contrastive_loss(y_true, d):
    y_true = tf.cast(tf.reshape(y_true, tf.shape(d)), d.dtype)
    # FIX: the labels' convention (1 = similar)
    return tf.reduce_mean(y_true * tf.square(d) + (1 - y_true) * tf.square(tf.maximum(margin - d, 0.0)))


embed = keras.Sequential(
    [keras.Input((dim,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(16)]
)
ia, ib = keras.Input((dim,)), keras.Input((dim,))
ea, eb = embed(ia), embed(ib)
dist = keras.layers.Lambda(
    lambda t: tf.sqrt(tf.reduce_sum(tf.square(t[0] - t[1]), axis=1, keepdims=True) + 1e-9)
)([ea, eb])
siamese = keras.Model([ia, ib], dist)
siamese.compile(optimizer=keras.optimizers.Adam(1e-3), loss=contrastive_loss)
siamese.fit([xa, xb], pair_y, batch_size=128, epochs=4, verbose=0)

e_tr, e_te = embed.predict(x_train, verbose=0), embed.predict(x_test, verbose=0)
d2 = (e_te ** 2).sum(1)[:, None] - 2 * e_te @ e_tr.T + (e_tr ** 2).sum(1)[None]
acc = np.mean(y_train[np.argmin(d2, axis=1)] == y_test)
print(f"HELDOUT 1nn_acc={acc:.3f}")
