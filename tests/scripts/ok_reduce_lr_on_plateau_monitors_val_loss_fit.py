"""Healthy: the twin of bug_reduce_lr_on_plateau_monitors_unlogged_name_fit, monitor="val_loss".

The callback watches the name fit logs for a loss compiled as "mse", and lowers the rate each
time the validation loss stops improving.
"""

import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, d = 3500, 20
X = rng.normal(size=(n, d)).astype("float32")
w = rng.normal(size=d)
y = (X @ w + 2.0 * rng.normal(size=n)).astype("float32")
x_tr, y_tr, x_va, y_va, x_te, y_te = X[:2000], y[:2000], X[2000:2500], y[2000:2500], X[2500:], y[2500:]

model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.08), loss="mse")
plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.2,
                                            patience=1, min_lr=1e-4)
model.fit(x_tr, y_tr, validation_data=(x_va, y_va), batch_size=16, epochs=8,
          callbacks=[plateau], verbose=0)
print("final lr", float(model.optimizer.learning_rate))
mse = float(np.mean((model.predict(x_te, verbose=0)[:, 0] - y_te) ** 2))
print(f"METRIC {mse:.4f}")
