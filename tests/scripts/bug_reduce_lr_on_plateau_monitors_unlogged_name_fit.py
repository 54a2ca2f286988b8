"""ReduceLROnPlateau(monitor="val_mse") with loss="mse": fit logs val_loss; the rate never drops.

Reconstructed from Stack Overflow ("ReduceLROnPlateau never reduces the learning rate"): a loss
compiled as "mse" is logged as "loss" and "val_loss", so the callback never finds "val_mse".
Keras 3 only warns each epoch; SGD keeps bouncing around the optimum at its first rate.
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
plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_mse", mode="min", factor=0.2,
                                            patience=1, min_lr=1e-4)
model.fit(x_tr, y_tr, validation_data=(x_va, y_va), batch_size=16, epochs=8,
          callbacks=[plateau], verbose=0)
print("final lr", float(model.optimizer.learning_rate))
mse = float(np.mean((model.predict(x_te, verbose=0)[:, 0] - y_te) ** 2))
print(f"METRIC {mse:.4f}")
