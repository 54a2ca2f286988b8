"""Healthy: the same factorization with 4 negatives sampled per positive interaction.

The twin of the positives-only fit: items the user did not interact with, labelled 0, give
the scores something to rank.

Source: https://github.com/tensorflow/recommenders/issues/627,
        https://github.com/PreferredAI/cornac/issues/254 (hunt34 b05)
expected: silent
"""
import keras
import numpy as np
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
N_USERS, N_ITEMS = 200, 150
NEGATIVES = 4  # sampled negatives per positive interaction

taste = rng.normal(size=(N_USERS, 4)) @ rng.normal(size=(4, N_ITEMS))
users, items = np.nonzero(taste > 2.0)
labels = [np.ones(len(users))]
pairs = [(users, items)]
for _ in range(NEGATIVES):
    pairs.append((users, rng.integers(0, N_ITEMS, len(users))))
    labels.append(np.zeros(len(users)))
users, items = (np.concatenate(p) for p in zip(*pairs))
labels = np.concatenate(labels).astype("float32")

u_in, i_in = keras.Input((1,), dtype="int32"), keras.Input((1,), dtype="int32")
vectors = [layers.Flatten()(layers.Embedding(n, 8)(i)) for n, i in ((N_USERS, u_in), (N_ITEMS, i_in))]
biases = [layers.Flatten()(layers.Embedding(n, 1)(i)) for n, i in ((N_USERS, u_in), (N_ITEMS, i_in))]
score = layers.Add()([layers.Dot(axes=1)(vectors), *biases])
model = keras.Model([u_in, i_in], layers.Activation("sigmoid")(score))
model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy", metrics=["accuracy"])
model.fit([users, items], labels, epochs=10, batch_size=128, verbose=2)
