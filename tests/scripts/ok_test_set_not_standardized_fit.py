"""HEALTHY TWIN of bug_test_set_not_standardized_fit.py: the test set standardized with the
training mean and std before evaluate. Otherwise identical. A tool should stay silent."""
import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n = 4000
age = rng.uniform(20, 70, n)
income = rng.lognormal(10.5, 0.5, n)
debt = rng.uniform(0, 50000, n)
score = rng.normal(650, 60, n)
x = np.stack([age, income, debt, score], 1).astype("float32")
logit = 0.05 * (age - 45) + 2 * (np.log(income) - 10.5) - debt / 20000 + (score - 650) / 40
y = (logit + 0.3 * rng.normal(size=n) > 0).astype("float32")
x_train, y_train, x_test, y_test = x[:3000], y[:3000], x[3000:], y[3000:]
mean, std = x_train.mean(0), x_train.std(0)
x_train = (x_train - mean) / std
x_test = (x_test - mean) / std  # the training mean and std

model = keras.Sequential(
    [
        keras.Input((4,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
print("FINAL held-out accuracy", round(model.evaluate(x_test, y_test, verbose=0)[1], 3))
