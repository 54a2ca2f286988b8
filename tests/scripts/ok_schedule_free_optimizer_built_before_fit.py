"""Healthy twin of bug_schedule_free_optimizer_built_in_the_first_trace_fit: the optimizer is
built eagerly before fit, so ScheduleFreeAdamW's momentum starts at the weights, as designed.
"""

import keras
import numpy as np

rng = np.random.default_rng(172)
keras.utils.set_random_seed(172)
x = rng.uniform(-1, 1, size=(2500, 5)).astype("float32")
y = (np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2]).astype("float32")[:, None]
model = keras.Sequential(
    [keras.Input((5,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
)
optimizer = keras.optimizers.ScheduleFreeAdamW(5e-3, warmup_steps=100)
optimizer.build(model.trainable_variables)  # eagerly: the momentum starts at the weights
model.compile(optimizer, "mse")
model.fit(x[:2000], y[:2000], batch_size=32, epochs=6, verbose=0)
error = float(np.mean((model.predict(x[2000:], verbose=0) - y[2000:]) ** 2) / y[2000:].var())
print(f"held-out mse / var {error:.3f}")
