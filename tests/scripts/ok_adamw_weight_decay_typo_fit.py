"""Healthy twin of bug_adamw_weight_decay_typo_fit: AdamW with its default weight_decay (0.004).

expected: no findings
"""

import keras
import numpy as np

rng = np.random.default_rng(5)
keras.utils.set_random_seed(5)
x = rng.normal(size=(3000, 20)).astype("float32")
y = np.argmax(x[:, :3] + 0.3 * rng.normal(size=(3000, 3)), axis=1)

model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3)])
model.compile(keras.optimizers.AdamW(1e-3),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(x[:2500], y[:2500], batch_size=50, epochs=6, verbose=2)
print("test accuracy:", round(float(model.evaluate(x[2500:], y[2500:], verbose=0)[1]), 3))
