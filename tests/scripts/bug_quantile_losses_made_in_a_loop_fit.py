"""BUG: a multi-quantile regressor (one output per quantile) compiled with a loss list made in a
list comprehension, `[lambda y, f: pinball(q, y, f) for q in quantiles]`. Each lambda reads `q`
when fit calls it, after the comprehension ended: all three read 0.9, so every output learns
the 90% quantile. It trains without an error and the loss falls; the 10% and 50% outputs'
held-out coverage (share of targets below the prediction) is near 0.9, not 0.1 and 0.5.
Source: https://github.com/keras-team/keras/issues/12939 ("Keras Multiple Loss List Function Not
Working": multiple quantile regression, right only with the loss list written out in compile);
Python's late-binding closures (the same loop in keras#4125 binds `q=q`).
A tool should say: the losses are one function reading the loop's last q -- bind it (q=q)."""
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
    loss=[lambda y_true, y_pred: pinball(q, y_true, y_pred) for q in quantiles],  # noqa: B023 BUG: late-bound q
)
model.fit(x_train, [y_train] * 3, batch_size=64, epochs=6, verbose=0)

predictions = model.predict(x_test, verbose=0)
for q, p in zip(quantiles, predictions):
    print(f"quantile {q}: held-out coverage {np.mean(y_test <= p):.3f}")
