"""BUG: a tiny transformer classifier reading its [CLS] token, given TensorFlow's transformer
tutorial padding mask (1 at the padding, meant to be added as mask * -1e9) as the
attention_mask of Keras' MultiHeadAttention, which keeps the positions where the mask is 1:
every query attends to the padding only, the [CLS] output carries no word, and accuracy stays
near chance (about 0.53 against 1.0 with tf.math.not_equal(seq, 0)). Source: the two
conventions side by side (TensorFlow's "Transformer model for language understanding" tutorial
against keras.layers.MultiHeadAttention's attention_mask docs); found by hunt8.
A tool should say: the attention mask keeps the padding and hides every real token."""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
V, T, n = 22, 32, 2000  # 0 = pad, 1..10 positive words, 11..20 negative, 21 = [CLS]
CLS = 21
lengths = rng.integers(5, 28, size=n)
x = np.zeros((n, T), dtype="int32")
y = np.zeros(n, dtype="float32")
for i, L in enumerate(lengths):
    words = rng.integers(1, 21, size=L)
    x[i, 0] = CLS
    x[i, 1 : L + 1] = words
    y[i] = float((words <= 10).sum() > (words > 10).sum())
x_train, y_train, x_test, y_test = x[:1500], y[:1500], x[1500:], y[1500:]


def create_padding_mask(seq):
    # BUG: 1 where the token is padding (the tutorial's convention, for adding mask * -1e9);
    # Keras' MultiHeadAttention keeps the positions where attention_mask is 1
    return tf.cast(tf.math.equal(seq, 0), tf.float32)[:, tf.newaxis, :]


class Classifier(keras.Model):
    def __init__(self):
        super().__init__()
        self.tok = keras.layers.Embedding(V, 32)
        self.pos = keras.layers.Embedding(T, 32)
        self.mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=16)
        self.norm1 = keras.layers.LayerNormalization()
        self.ffn = keras.Sequential(
            [keras.layers.Dense(64, activation="relu"), keras.layers.Dense(32)]
        )
        self.norm2 = keras.layers.LayerNormalization()
        self.out = keras.layers.Dense(1)

    def call(self, tokens, training=False):
        h = self.tok(tokens) + self.pos(tf.range(T))[tf.newaxis]
        mask = create_padding_mask(tokens)
        a = self.mha(h, h, attention_mask=mask, training=training)
        h = self.norm1(h + a)
        h = self.norm2(h + self.ffn(h))
        return self.out(h[:, 0])  # [CLS]


model = Classifier()
model.compile(
    optimizer=keras.optimizers.Adam(2e-3),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)],
)
model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
print("FINAL held-out accuracy", round(model.evaluate(x_test, y_test, verbose=0)[1], 3))
