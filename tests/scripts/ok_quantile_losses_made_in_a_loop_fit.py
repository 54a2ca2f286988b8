"""HEALTHY TWIN of bug_quantile_losses_made_in_a_loop_fit.py: each lambda binds its own quantile
as it is made (`q=q`), so every output learns its quantile. Otherwise identical.
A tool should stay silent.
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(3)
rng = np.random.default_rng(3)
n = 3000
x = rng.uniform(-2, 2, size=(n, 1)).astype("float32")
y = (np.sin(2 * x) + (0.3 + 0.3 * np.abs(x)) * rng.normal(size=(n, 1))).astype("float32")
x_train, x_test, y_train, y_test = x[:2500], x[2500:], y[:2500], y[2500:]
quantiles = [0.1, 0.5, 0.9]


def pinball(q, y_true, y_pred):
    e = y_true - y_pred
    return tf.reduce_mean(tf.maximum(q * e, (q - 1) * e), axis=-1)


inputs = keras.Input((1,))
hidden = keras.layers.Dense(32, activation="relu")(inputs)
hidden = keras.layers.Dense(32, activation="relu")(hidden)
outputs = [keras.layers.Dense(1, name=f"q{int(q * 100)}")(hidden) for q in quantiles]
model = keras.Model(inputs, outputs)
model.compile(
    optimizer=keras.optimizers.Adam(3e-3),
    loss=[lambda y_true, y_pred, q=q: pinball(q, y_true, y_pred) for q in quantiles],  # FIX: q bound
)
model.fit(x_train, [y_train] * 3, batch_size=64, epochs=6, verbose=0)

predictions = model.predict(x_test, verbose=0)
for q, p in zip(quantiles, predictions):
    print(f"quantile {q}: held-out coverage {np.mean(y_test <= p):.3f}")
