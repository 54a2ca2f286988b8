"""Healthy: curriculum learning, the easy examples (far from the boundary) fitted first, then all.

The training loss jumps when the hard examples come in, by design, and falls from there; the
loss of the easy phase says nothing about it.

Source: Bengio et al., "Curriculum learning" (ICML 2009); hunt32 (a newcomer's healthy script)
expected: silent
"""
import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
w = rng.standard_normal(10)
w /= np.linalg.norm(w)


def make(n):
    x = rng.standard_normal((n, 10)).astype("float32")
    score = x @ w + 0.5 * np.sin(3 * x[:, 1])
    y = (score + 0.3 * rng.standard_normal(n) > 0).astype("float32")
    return x, y, np.abs(score)


x, y, margin = make(6000)
x_test, y_test, _ = make(2000)
easy = margin > np.median(margin)

model = keras.Sequential(
    [
        keras.Input((10,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(keras.optimizers.Adam(3e-3), keras.losses.BinaryCrossentropy(from_logits=True))
model.fit(x[easy], y[easy], batch_size=64, epochs=3, verbose=0)
model.fit(x, y, batch_size=64, epochs=4, verbose=0)
accuracy = np.mean((model.predict(x_test, verbose=0)[:, 0] > 0) == y_test)
print(f"held-out accuracy {accuracy:.3f} (majority {max(y_test.mean(), 1 - y_test.mean()):.3f})")
