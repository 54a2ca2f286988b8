"""Reported symptom: "the priority head predicts the ETA". A functional model's outputs are a
dict written {"priority": ..., "eta_days": ...}, and fit gets the targets as a list in that
order. Keras 3 flattens a dict by sorted key ("eta_days", "priority") and matches the list by
position: each head learns the other's target. The training loss looks fine; Keras warns of
nothing.

Source: https://github.com/tensorflow/tensorflow/issues/84278,
        https://github.com/keras-team/keras/issues/20070, hunt28 b09
expected: loss-misassigned
"""

import keras
import numpy as np

keras.utils.set_random_seed(9)
rng = np.random.default_rng(9)
D = 12


def make(n):
    x = rng.normal(size=(n, D)).astype("float32")
    prio = (np.tanh(x[:, :3].sum(1)) * 2)[:, None].astype("float32")
    eta = (np.abs(x[:, 3:6]).sum(1) - 0.5 * x[:, 6] * x[:, 7])[:, None].astype("float32")
    return x, prio, eta


x, yp, ye = make(2000)
xv, ypv, yev = make(1000)

inp = keras.Input((D,), name="features")
h = keras.layers.Dense(64, activation="relu")(inp)
outputs = {
    "priority": keras.layers.Dense(1, name="priority")(h),
    "eta_days": keras.layers.Dense(1, name="eta_days")(h),
}
model = keras.Model(inp, outputs)
model.compile(optimizer=keras.optimizers.Adam(2e-3), loss={"priority": "mse", "eta_days": "mse"})
hist = model.fit(x, [yp, ye], batch_size=64, epochs=5, verbose=0)
pv = model.predict(xv, verbose=0)
mse_p = float(np.mean((pv["priority"] - ypv) ** 2))
mse_e = float(np.mean((pv["eta_days"] - yev) ** 2))
print(
    f"METRIC loss={hist.history['loss'][-1]:.4f} val_mse_priority={mse_p:.4f} val_mse_eta={mse_e:.4f}"
)
