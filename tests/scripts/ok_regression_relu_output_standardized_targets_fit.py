"""HEALTHY TWIN of bug_regression_relu_output_standardized_targets_fit.py: the last layer is
linear, so negative targets can be predicted. Otherwise identical. A tool should stay silent."""
import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, d = 4000, 8
x = rng.normal(size=(n, d)).astype("float32")
t = np.sin(x[:, 0]) * 3 + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] + 0.1 * rng.normal(size=n)
y = ((t - t.mean()) / t.std()).astype("float32")  # standardized targets
x_train, y_train, x_test, y_test = x[:3000], y[:3000], x[3000:], y[3000:]

model = keras.Sequential(
    [
        keras.Input((d,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1),  # linear: standardized targets are half negative
    ]
)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
pred = model.predict(x_test, verbose=0)[:, 0]
print("FINAL held-out R2", round(float(1 - ((pred - y_test) ** 2).mean() / y_test.var()), 3))
