"""Healthy twin of bug_embedding_fed_min_max_scaled_ids_fit: the numeric features are min-max
scaled, the Embedding gets the raw store ids (whole numbers, held as float32), and learns each
store's effect.
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
ids = table[:, 0]  # the raw ids, float32 but whole

id_input, numeric_input = keras.Input((), name="store"), keras.Input((4,), name="numeric")
embedded = keras.layers.Embedding(stores, 4)(id_input)
hidden = keras.layers.Dense(32, activation="relu")(
    keras.layers.Concatenate()([embedded, numeric_input])
)
model = keras.Model([id_input, numeric_input], keras.layers.Dense(1)(hidden))
model.compile(keras.optimizers.Adam(3e-3), "mse")
history = model.fit([ids, scaled[:, 1:]], y, batch_size=64, epochs=6, verbose=0)
print(f"loss {history.history['loss'][-1]:.3f}")
