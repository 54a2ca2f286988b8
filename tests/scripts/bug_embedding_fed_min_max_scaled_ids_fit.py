"""Reported symptom: a regression with a store-id Embedding learns no per-store effect; its
loss stays at what the numeric features explain. The id column was min-max scaled with the
other features, so the Embedding is fed fractions in [0, 1]; Keras casts them to int32, which
truncates every id but the largest to row 0.

Source: https://github.com/keras-team/keras/issues/13906 (hunt17)
expected: embedding-ids-fractional
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
n, stores = 2000, 40
store = rng.integers(0, stores, size=n)
numeric = rng.normal(size=(n, 4))
y = (rng.normal(0, 1.5, size=stores)[store] + numeric @ rng.normal(size=4)).astype("float32")
table = np.column_stack([store, numeric]).astype("float32")
scaled = (table - table.min(0)) / (table.max(0) - table.min(0))
ids = scaled[:, 0]  # meant: table[:, 0], the raw ids

id_input, numeric_input = keras.Input((), name="store"), keras.Input((4,), name="numeric")
embedded = keras.layers.Embedding(stores, 4)(id_input)
hidden = keras.layers.Dense(32, activation="relu")(
    keras.layers.Concatenate()([embedded, numeric_input])
)
model = keras.Model([id_input, numeric_input], keras.layers.Dense(1)(hidden))
model.compile(keras.optimizers.Adam(3e-3), "mse")
history = model.fit([ids, scaled[:, 1:]], y, batch_size=64, epochs=6, verbose=0)
print(f"loss {history.history['loss'][-1]:.3f}")
