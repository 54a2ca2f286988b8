"""Bug: a matrix factorization with user and item biases fitted on positive interactions only.

Every label is 1 (the implicit feedback: what each user clicked), and no negatives are sampled,
so the per-id biases fit the labels alone: the loss falls toward 0 and every pair, seen or
not, scores near 1 (held-out AUC 0.87 against 0.93 with 4 sampled negatives per positive, in
the report's setting).

Source: https://github.com/tensorflow/recommenders/issues/627,
        https://github.com/PreferredAI/cornac/issues/254 (hunt34 b05)
expected: loss-not-decreasing
"""
import keras
import numpy as np
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
N_USERS, N_ITEMS = 200, 150
NEGATIVES = 0  # sampled negatives per positive interaction

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
