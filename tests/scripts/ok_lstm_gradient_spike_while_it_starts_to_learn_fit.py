"""OK: an LSTM whose gradient norm spikes 1000-fold as it starts to learn, then comes back.

Three sensor channels laid out (samples, timesteps, channels) as the LSTM wants them; the label
is whether channels 0 and 1 move together. The first gradients are tiny (0.14: the loss sits on
a plateau at ln 2), then the norm jumps past 100 as the LSTM finds the signal, and falls back
while the loss drops and held-out accuracy reaches 1.0 (hunt34 f04: exploding-gradient was a
false alarm here).

Source: https://stackoverflow.com/questions/39324520/understanding-tensorflow-lstm-input-shape
        (the healthy layout, transposed); hunt34 f04
expected: silent
"""
import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
C, T = 3, 60


def record(n):
    y = rng.integers(0, 2, n)
    base = rng.normal(0, 1, (n, T))
    sign = np.where(y == 1, 1.0, -1.0)[:, None]
    channels = [base, sign * base + rng.normal(0, 1.0, (n, T)), rng.normal(0, 1, (n, T))]
    return np.stack(channels, 1).transpose(0, 2, 1).astype(np.float32), y.astype(np.float32)


x, y = record(2000)
model = keras.Sequential([keras.Input((T, C)), keras.layers.LSTM(32), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=8, batch_size=64, validation_split=0.1, verbose=2)
