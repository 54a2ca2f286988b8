"""The healthy twin: the same model fit with its targets as a dict keyed by output name, which
Keras matches by name.

Source: https://github.com/keras-team/keras/issues/20070, hunt28 f09
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
hist = model.fit(x, {"priority": yp, "eta_days": ye}, batch_size=64, epochs=5, verbose=0)
pv = model.predict(xv, verbose=0)
mse_p = float(np.mean((pv["priority"] - ypv) ** 2))
mse_e = float(np.mean((pv["eta_days"] - yev) ** 2))
print(
    f"METRIC loss={hist.history['loss'][-1]:.4f} val_mse_priority={mse_p:.4f} val_mse_eta={mse_e:.4f}"
)
