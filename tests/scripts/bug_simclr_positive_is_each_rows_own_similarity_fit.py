"""Reported symptom: "my SimCLR loss drops to almost 0, but the embeddings are no better than
the raw inputs". The NT-Xent loss, written by hand over the concatenated 2N x 2N similarity
matrix, takes labels = tf.range(2N) and masks no diagonal: each row's "positive" is its own
similarity (always 1 / tau, the largest), not its other view's.

Source: https://github.com/Lightning-Universe/lightning-bolts/issues/695, hunt28 b05
expected: labels-uninformative
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(5)
rng = np.random.default_rng(5)
K, DS, DN, N = 8, 8, 24, 2048
centers = rng.normal(0, 1.0, (K, DS)).astype("float32")
labels = rng.integers(0, K, N)
signal = centers[labels] + rng.normal(0, 0.15, (N, DS)).astype("float32")
x = np.concatenate([signal, rng.normal(0, 2.0, (N, DN))], 1).astype("float32")  # nuisance dims
TAU = 0.2


def augment(b):
    s = b[:, :DS] + tf.random.normal(tf.shape(b[:, :DS]), stddev=0.1)
    n = tf.random.normal(tf.shape(b[:, DS:]), stddev=2.0)  # nuisance is re-drawn per view
    return tf.concat([s, n], 1)


class SimCLR(keras.Model):
    def __init__(self):
        super().__init__()
        self.encoder = keras.Sequential(
            [
                keras.Input((DS + DN,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(32),
            ]
        )
        self.head = keras.Sequential(
            [keras.Input((32,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(16)]
        )
        self.tracker = keras.metrics.Mean(name="loss")

    def call(self, x):
        return self.encoder(x)

    def train_step(self, data):
        if isinstance(data, (tuple, list)):
            data = data[0]
        n = tf.shape(data)[0]
        with tf.GradientTape() as tape:
            z = self.head(
                self.encoder(tf.concat([augment(data), augment(data)], 0), training=True),
                training=True,
            )
            z = tf.math.l2_normalize(z, axis=1)
            sim = tf.matmul(z, z, transpose_b=True) / TAU
            targets = tf.range(2 * n)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(targets, sim, from_logits=True)
            )
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.tracker.update_state(loss)
        return {"loss": self.tracker.result()}

    @property
    def metrics(self):
        return [self.tracker]


def knn_acc(emb, y):
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    s = emb[:1000] @ emb[1000:].T
    return float(np.mean(y[1000:][s.argmax(1)] == y[:1000]))


model = SimCLR()
model.compile(optimizer=keras.optimizers.Adam(1e-3))
raw = knn_acc(x.copy(), labels)
hist = model.fit(x, batch_size=128, epochs=8, verbose=0)
emb = model.encoder.predict(x, verbose=0)
print(
    f"METRIC first_loss={hist.history['loss'][0]:.4f} loss={hist.history['loss'][-1]:.4f} "
    f"knn_raw={raw:.3f} knn_emb={knn_acc(emb, labels):.3f}"
)
