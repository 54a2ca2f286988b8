"""Reported symptom: "my transformer's loss plateaus; only the first positions are right". The
hand-written multi-head self-attention splits heads with a bare reshape (B, T, D) -> (B, H, T,
D/H) and merges them with the inverse reshape, without the (B, T, H, d) reshape and transpose:
each "head" holds T/H consecutive tokens' features, and a token attends only inside its block.

Source: https://github.com/reczoo/FuxiCTR/issues/30,
        https://github.com/jsbaan/transformer-from-scratch/pull/6, hunt28 b11
expected: reshape-transposes
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(11)
rng = np.random.default_rng(11)
V, T, DM, H = 10, 8, 32, 4
x = rng.integers(0, V, (2048, T)).astype("int32")
y = np.repeat(x[:, :1], T, axis=1)  # every position must output the first token
xv = rng.integers(0, V, (512, T)).astype("int32")
yv = np.repeat(xv[:, :1], T, axis=1)


class SelfAttention(keras.layers.Layer):
    def __init__(self, d_model, heads, **kw):
        super().__init__(**kw)
        self.h, self.dh = heads, d_model // heads
        self.wq, self.wk, self.wv = (keras.layers.Dense(d_model) for _ in range(3))
        self.wo = keras.layers.Dense(d_model)

    def split_heads(self, t):
        b, n = tf.shape(t)[0], tf.shape(t)[1]
        return tf.reshape(t, (b, self.h, n, self.dh))

    def merge_heads(self, t):
        b, n = tf.shape(t)[0], tf.shape(t)[2]
        return tf.reshape(t, (b, n, self.h * self.dh))

    def call(self, x):
        q, k, v = (
            self.split_heads(self.wq(x)),
            self.split_heads(self.wk(x)),
            self.split_heads(self.wv(x)),
        )
        att = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / float(np.sqrt(self.dh)), axis=-1)
        return self.wo(self.merge_heads(tf.matmul(att, v)))


class PositionalEmbedding(keras.layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.tok = keras.layers.Embedding(V, DM)
        self.pos = keras.layers.Embedding(T, DM)

    def call(self, ids):
        return self.tok(ids) + self.pos(tf.range(T))[None]


inp = keras.Input((T,), dtype="int32")
h = PositionalEmbedding()(inp)
h = keras.layers.LayerNormalization()(h + SelfAttention(DM, H)(h))
h = keras.layers.LayerNormalization()(
    h + keras.layers.Dense(DM)(keras.layers.Dense(64, activation="relu")(h))
)
out = keras.layers.Dense(V)(h)
model = keras.Model(inp, out)
model.compile(
    optimizer=keras.optimizers.Adam(2e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
hist = model.fit(x, y, batch_size=64, epochs=6, verbose=0)
pred = model.predict(xv, verbose=0).argmax(-1)
acc_pos = (pred == yv).mean(0)
print("per-position acc:", np.round(acc_pos, 2).tolist())
print(
    f"METRIC first_loss={hist.history['loss'][0]:.4f} loss={hist.history['loss'][-1]:.4f} "
    f"val_acc={float(acc_pos.mean()):.3f}"
)
