"""Healthy twin of bug_stateful_lstm_rows_shuffled_by_fit.py: the same stateful LSTM, trained
with shuffle=False, its chunks in order and its states reset every epoch.

expected: silent
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
SERIES, CHUNKS, T = 32, 8, 5


def chunks():
    # Each series' label is a bit shown only in the first step of its first chunk: the later
    # chunks can be labelled from the carried state alone. Laid out chunk-major, so row i of
    # batch k+1 continues row i of batch k.
    bits = rng.integers(0, 2, size=SERIES)
    series = rng.normal(size=(SERIES, CHUNKS * T, 2)).astype("float32")
    series[:, :, 0] = 0.0
    series[:, 0, 0] = 2.0 * bits - 1.0
    x = series.reshape(SERIES, CHUNKS, T, 2).transpose(1, 0, 2, 3).reshape(-1, T, 2)
    return x, np.tile(bits, CHUNKS).astype("float32")


x, y = chunks()
x_test, y_test = chunks()
lstm = keras.layers.LSTM(16, stateful=True)
model = keras.Sequential(
    [keras.Input(batch_shape=(SERIES, T, 2)), lstm, keras.layers.Dense(1, activation="sigmoid")]
)
model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
reset = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: lstm.reset_states())
model.fit(x, y, batch_size=SERIES, epochs=25, shuffle=False, verbose=0, callbacks=[reset])
lstm.reset_states()
predictions = np.concatenate([model.predict_on_batch(c)[:, 0] for c in np.split(x_test, CHUNKS)])
later = slice(SERIES, None)  # the chunks only the state can label
print(f"later-chunk accuracy {np.mean((predictions[later] > 0.5) == y_test[later]):.3f}")
