"""Adam(epsilon=1.0), from the Keras Adam docstring's note ("when training an Inception network
on ImageNet a current good choice is 1.0 or 0.1"). Keras divides each step by sqrt(v) + epsilon;
with gradients near 1e-2, epsilon outweighs sqrt(v) and Adam degenerates into SGD at 1e-3:
test accuracy 0.56 against 0.97 with the default epsilon (chance 0.2). Nothing else looks wrong:
the loss falls slowly, the update-to-weight ratios sit near 1e-4.
"""

import keras
import numpy as np

keras.utils.set_random_seed(23)
rng = np.random.default_rng(23)
n, d, c = 4000, 20, 5
centers = rng.normal(0, 1, (c, d))
y = rng.integers(0, c, n)
x = (centers[y] + rng.normal(0, 1.2, (n, d))).astype("float32")
optimizer = keras.optimizers.Adam(1e-3, epsilon=1.0)  # BUG: the default is 1e-7
model = keras.Sequential(
    [
        keras.Input((d,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(c),
    ]
)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(optimizer, loss, metrics=["accuracy"])
model.fit(x[:3200], y[:3200], batch_size=32, epochs=6, verbose=2)
accuracy = np.mean(model.predict(x[3200:], verbose=0).argmax(1) == y[3200:])
print("FINAL test accuracy", float(accuracy), "(chance 0.2)")
