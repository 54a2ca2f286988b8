"""Reported symptom: a StringLookup + Embedding of a store id does not learn the stores'
effects: the test error stays high. The lookup was adapted on a small sample of the column
"to save time", so most stores are out of its vocabulary and share one id.

Source: hunt23 p04 (a pattern of user reports: StringLookup maps most categories to [UNK]).
expected: vocabulary-misses-data
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
n_stores, n = 400, 3000
effect = rng.normal(size=n_stores)
index = rng.integers(0, n_stores, n)
stores = np.array([f"store_{i:04d}" for i in index])[:, None]
y = (effect[index] + 0.2 * rng.normal(size=n)).astype("float32")
lookup = keras.layers.StringLookup()
lookup.adapt(stores[:100])  # meant: lookup.adapt(stores[:2500])
inputs = keras.Input(shape=(1,), dtype="string")
embedded = keras.layers.Embedding(lookup.vocabulary_size(), 8)(lookup(inputs))
outputs = keras.layers.Dense(1)(keras.layers.Flatten()(embedded))
model = keras.Model(inputs, outputs)
model.compile(keras.optimizers.Adam(1e-2), "mse")
train = tf.data.Dataset.from_tensor_slices((stores[:2500], y[:2500])).shuffle(2500, seed=0)
model.fit(train.batch(64), epochs=5, verbose=0)
test = tf.data.Dataset.from_tensor_slices((stores[2500:], y[2500:])).batch(64)
print(f"test mse {model.evaluate(test, verbose=0):.3f}")
