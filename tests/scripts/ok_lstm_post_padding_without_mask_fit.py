"""Healthy twin of bug_lstm_post_padding_without_mask_fit: the same post-padded reviews read
through Embedding(mask_zero=True), so the LSTM skips the padding (test accuracy 0.995 against
0.51).

expected: no findings
"""

import keras
import numpy as np

rng = np.random.default_rng(13)
keras.utils.set_random_seed(13)
n, vocab, maxlen = 2000, 200, 80
positive = set(range(3, 23))      # tokens that signal a positive review
negative = set(range(23, 43))     # ... a negative one
seqs, y = [], []
for _ in range(n):
    label = int(rng.integers(0, 2))
    length = int(rng.integers(8, 20))
    toks = rng.integers(43, vocab, size=length)
    k = int(rng.integers(2, 5))
    pos = rng.choice(length, size=k, replace=False)
    toks[pos] = rng.integers(3, 23, size=k) if label else rng.integers(23, 43, size=k)
    seqs.append(toks)
    y.append(label)
y = np.array(y, dtype="int32")
x = keras.utils.pad_sequences(seqs, maxlen=maxlen, padding="post")
x_tr, y_tr, x_te, y_te = x[:1600], y[:1600], x[1600:], y[1600:]

model = keras.Sequential([
    keras.Input((maxlen,)),
    keras.layers.Embedding(vocab, 16, mask_zero=True),  # the fix: mask the padding
    keras.layers.LSTM(16),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
hist = model.fit(x_tr, y_tr, batch_size=32, epochs=4, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
print("test accuracy:", round(float(model.evaluate(x_te, y_te, verbose=0)[1]), 4))
