"""Healthy twin of bug_padding_mask_inverted_sample_weight_fit: the padding mask given to fit
as a per-token sample_weight as meant, (tags != 0): the real tokens count, the padding does not,
and the tagger learns the tags.

expected: no findings
"""

import keras
import numpy as np

KEEP_TOKENS = True  # the buggy twin weights the padding (bug_padding_mask_inverted_sample_weight_fit)

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
