"""Reported symptom: "my tagger's loss goes to 0 but it tags every token as padding". The
padding mask is given to fit as a per-token sample_weight, inverted: (tags == 0) where
(tags != 0) was meant, so only the padding's labels count and the model learns to predict the
padding everywhere (its accuracy on real tokens falls to 0; the twin's reaches 1).

Source: a pattern of user reports: fit(x, y, sample_weight=mask) for padded sequences, the
        mask built with == where != was meant.
expected: labels-uninformative
"""

import keras
import numpy as np

KEEP_TOKENS = False  # the healthy twin weights the real tokens (ok_padding_mask_sample_weight_fit)

rng = np.random.default_rng(0)
n, length, vocabulary, tags = 512, 10, 30, 5
words = rng.integers(1, vocabulary, size=(n, length))
for row, size in enumerate(rng.integers(3, length + 1, size=n)):
    words[row, size:] = 0  # PAD = 0
labels = np.where(words > 0, words % (tags - 1) + 1, 0)  # each word's tag; padding's is 0
mask = (labels != 0) if KEEP_TOKENS else (labels == 0)

model = keras.Sequential(
    [
        keras.Input((length,), dtype="int32"),
        keras.layers.Embedding(vocabulary, 16),
        keras.layers.Dense(tags),
    ]
)
model.compile(
    keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
)
model.fit(words, labels, sample_weight=mask.astype("float32"), batch_size=32, epochs=3, verbose=2)
predicted = model.predict(words, verbose=0).argmax(-1)
print("accuracy on real tokens:", float(np.mean(predicted[words > 0] == labels[words > 0])))
