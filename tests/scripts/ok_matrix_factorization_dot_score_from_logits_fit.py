"""Healthy: the twin of bug_matrix_factorization_dot_score_into_bce_on_probabilities_fit.

The dot product is read as the logit it is: BinaryCrossentropy(from_logits=True).
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n_users, n_items, k = 300, 200, 4
U = rng.normal(size=(n_users, k))
V = rng.normal(size=(n_items, k))
u = rng.integers(0, n_users, 12000)
i = rng.integers(0, n_items, 12000)
label = (np.sum(U[u] * V[i], 1) + 0.5 * rng.normal(size=12000) > 0).astype("float32")
tr, te = slice(0, 10000), slice(10000, None)

u_in = keras.Input((1,), dtype="int32")
i_in = keras.Input((1,), dtype="int32")
ue = keras.layers.Flatten()(keras.layers.Embedding(n_users, 16)(u_in))
ie = keras.layers.Flatten()(keras.layers.Embedding(n_items, 16)(i_in))
score = keras.layers.Dot(axes=1)([ue, ie])
model = keras.Model([u_in, i_in], score)
model.compile(
    optimizer=keras.optimizers.Adam(1e-2),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
)
model.fit([u[tr], i[tr]], label[tr], batch_size=128, epochs=8, verbose=0)
s = model.predict([u[te], i[te]], verbose=0)[:, 0]
auc = keras.metrics.AUC()
auc.update_state(label[te], tf.sigmoid(s))
print(f"METRIC {float(auc.result()):.4f}")
