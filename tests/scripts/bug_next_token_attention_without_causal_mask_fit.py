"""A miniature GPT whose self-attention has no causal mask (`MultiHeadAttention(h, h)`): the
labels are the input shifted one step, so each position reads its own label from the next
input token. Teacher-forced training accuracy goes to about 1, while the next token predicted
from a prefix alone (as generation sees it) is right 0.11 of the time (chance 0.08) against 0.32
for the twin, which passes use_causal_mask=True.
"""

import keras
import numpy as np

keras.utils.set_random_seed(3)
rng = np.random.default_rng(3)
V, T, D = 12, 12, 32


def make(n):  # a toy grammar: the next token is the sum of the last two, 80% of the time
    s = np.zeros((n, T + 1), "int32")
    s[:, :2] = rng.integers(0, V, (n, 2))
    for t in range(2, T + 1):
        s[:, t] = np.where(rng.random(n) < 0.8, (s[:, t - 1] + s[:, t - 2]) % V, rng.integers(0, V, n))
    return s[:, :-1], s[:, 1:]


x, y = make(2000)
tokens = keras.Input((T,), dtype="int32")
h = keras.layers.Embedding(V, D)(tokens) + keras.layers.Embedding(T, D)(keras.ops.arange(T))
a = keras.layers.MultiHeadAttention(num_heads=2, key_dim=D // 2)(h, h)  # BUG: no causal mask
h = keras.layers.LayerNormalization()(h + a)
h = keras.layers.LayerNormalization()(h + keras.layers.Dense(D, activation="relu")(h))
model = keras.Model(tokens, keras.layers.Dense(V)(h))
model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(x, y, batch_size=64, epochs=12, verbose=0)
x2, y2 = make(300)
right = 0
for k in range(2, T + 1):  # the next token from the prefix alone, padded after it
    prefix = np.where(np.arange(T) < k, x2, 0)
    right += int((model.predict(prefix, verbose=0)[:, k - 1].argmax(-1) == y2[:, k - 1]).sum())
print("FINAL next-token accuracy from a prefix", right / (300 * (T - 1)))
