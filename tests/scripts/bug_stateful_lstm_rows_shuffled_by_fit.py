"""Reported symptom: a stateful LSTM learns nothing across batches; the state seems useless.
Each long series was cut into chunks laid out so that row i of batch k+1 continues row i of
batch k, but fit shuffles the rows by default (shuffle=True), so every row inherits the state
of another series.

Source: https://github.com/keras-team/keras/issues/1820 ("shuffle=False is missing in call to
fit()"), tensorflow#40067 (hunt18)
expected: stateful-shuffled
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
model.fit(x, y, batch_size=SERIES, epochs=25, verbose=0, callbacks=[reset])  # shuffle=True
lstm.reset_states()
predictions = np.concatenate([model.predict_on_batch(c)[:, 0] for c in np.split(x_test, CHUNKS)])
later = slice(SERIES, None)  # the chunks only the state can label
print(f"later-chunk accuracy {np.mean((predictions[later] > 0.5) == y_test[later]):.3f}")
