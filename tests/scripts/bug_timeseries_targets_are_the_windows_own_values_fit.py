"""Reported symptom: "my forecaster's training loss is near 0, but its forecasts are useless".
keras.utils.timeseries_dataset_from_array(data, targets=..., sequence_length=L) pairs targets[i]
with the window that starts at i; given the series itself as targets, each window's label is
its own first value. The model learns to copy x[0] and has no skill one step ahead.

Source: https://keras.io/api/data_loading/timeseries/ ("targets[i] should be the target
        corresponding to the window that starts at index i"), hunt28 b01
expected: labels-in-inputs
"""
import keras
import numpy as np

keras.utils.set_random_seed(1)
rng = np.random.default_rng(1)
T, L = 3000, 24
t = np.arange(T)
series = np.sin(0.21 * t) + 0.6 * np.sin(0.047 * t + 1.0) + 0.05 * rng.normal(size=T)
series = series.astype("float32")
train, test = series[:2400], series[2400:]

ds = keras.utils.timeseries_dataset_from_array(
    train, targets=train, sequence_length=L, batch_size=64, shuffle=True, seed=1
)
model = keras.Sequential(
    [keras.Input((L,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
history = model.fit(ds, epochs=5, verbose=0)

# Next-step forecasts on the held-out tail: window test[i:i+L] -> test[i+L].
xt = np.stack([test[i : i + L] for i in range(len(test) - L)])
mse = float(np.mean((model.predict(xt, verbose=0)[:, 0] - test[L:]) ** 2))
print(f"METRIC train_loss={history.history['loss'][-1]:.4f} next_step_mse={mse:.4f}")
