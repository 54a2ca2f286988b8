"""Reported symptom: an LSTM sentiment classifier stays at ~50% accuracy (loss ~0.693) while the
same data in a bag-of-words model learns. The sequences were padded at the END
(`pad_sequences(..., padding="post")`) to a length far above most reviews, and the Embedding
has no `mask_zero=True`: the LSTM reads the review and then dozens of padding steps, and its
final state -- all the Dense head sees -- has to carry the review across that padding. In a few
epochs it does not: the output is nearly the same for every review.

Source: common report "LSTM accuracy stuck at 50%" with padding='post' and no masking (no single
        URL found)
expected: loss-not-decreasing at the chance level, naming the padding the LSTM reads unmasked
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
x = keras.utils.pad_sequences(seqs, maxlen=maxlen, padding="post")  # the bug: post-padding ...
x_tr, y_tr, x_te, y_te = x[:1600], y[:1600], x[1600:], y[1600:]

model = keras.Sequential([
    keras.Input((maxlen,)),
    keras.layers.Embedding(vocab, 16),  # ... and no mask_zero=True
    keras.layers.LSTM(16),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
hist = model.fit(x_tr, y_tr, batch_size=32, epochs=4, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
print("test accuracy:", round(float(model.evaluate(x_te, y_te, verbose=0)[1]), 4))
