"""Reported symptom: a house-price regression (features standardised, prices in dollars, around
200,000) prints a loss in the tens of billions that barely moves, and every prediction is a few
dollars. Adam moves each weight by about the learning rate per step, so the output, starting
near 0, would need hundreds of thousands of steps to reach the targets' scale; the network
learns nothing about the inputs in the meantime.

Source: https://wiki.hoelee.com/content/stats.stackexchange.com_en_all_2022-05/questions/418955/why-is-deep-neural-net-with-linear-activation-diverges
        ("caused by not scaled target variable")
expected: exploding-gradient, naming the data's scale (the first step's gradient norm, 9e5,
          before any update), not a learning rate
"""

import keras
import numpy as np

rng = np.random.default_rng(9)
keras.utils.set_random_seed(9)
x = rng.normal(size=(2000, 10)).astype("float32")  # already standardised features
price = 200_000 + 60_000 * (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - 0.7 * x[:, 3])
y = price.astype("float32")  # the bug: targets left in dollars
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
pred = model.predict(x_te, verbose=0)[:, 0]
r2 = 1 - np.mean((pred - y_te) ** 2) / np.var(y_te)
print("test R^2 (in dollars):", round(float(r2), 4))
