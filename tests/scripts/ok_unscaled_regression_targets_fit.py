"""Healthy twin of bug_unscaled_regression_targets_fit: the same house prices standardized,
(y - mean) / std, and the predictions mapped back to dollars (test R^2 0.97 against -6.1).

expected: no findings
"""

import keras
import numpy as np

rng = np.random.default_rng(9)
keras.utils.set_random_seed(9)
x = rng.normal(size=(2000, 10)).astype("float32")  # already standardised features
price = 200_000 + 60_000 * (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - 0.7 * x[:, 3])
mu, sd = price[:1600].mean(), price[:1600].std()
y = ((price - mu) / sd).astype("float32")  # the fix: standardised targets
x_tr, y_tr, x_te, y_te = x[:1600], y[:1600], x[1600:], y[1600:]

model = keras.Sequential(
    [
        keras.Input((10,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(optimizer="adam", loss="mse")
hist = model.fit(x_tr, y_tr, batch_size=32, epochs=4, verbose=0)
print("loss per epoch:", [f"{v:.4g}" for v in hist.history["loss"]])
pred = model.predict(x_te, verbose=0)[:, 0] * sd + mu
y_te = y_te * sd + mu
r2 = 1 - np.mean((pred - y_te) ** 2) / np.var(y_te)
print("test R^2 (in dollars):", round(float(r2), 4))
