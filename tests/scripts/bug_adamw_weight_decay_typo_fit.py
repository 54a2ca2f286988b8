"""AdamW with a huge weight_decay (50.0; meant 5e-5, typed 5e1).

symptom: fit runs, loss stays at log(3) ~ 1.10, accuracy stays at chance (~0.33).
why: AdamW subtracts lr * weight_decay * w from every weight each step (here 5% per step), which pulls the
weights to ~0 much faster than the gradient step (lr per step at most) can move them.
Source: no single URL (decoupled weight decay is multiplied by lr in Keras/PyTorch AdamW; users set
values meant for a different convention).
expected: loss-not-decreasing, naming weight_decay=50 as what shrinks the weights
"""

import keras
import numpy as np

rng = np.random.default_rng(5)
keras.utils.set_random_seed(5)
x = rng.normal(size=(3000, 20)).astype("float32")
y = np.argmax(x[:, :3] + 0.3 * rng.normal(size=(3000, 3)), axis=1)

model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3)])
model.compile(keras.optimizers.AdamW(1e-3, weight_decay=50.0),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(x[:2500], y[:2500], batch_size=50, epochs=6, verbose=2)
print("test accuracy:", round(float(model.evaluate(x[2500:], y[2500:], verbose=0)[1]), 3))
