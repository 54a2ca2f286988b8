"""BUG: tabular features on very different scales (age, income, debt, credit score),
standardized by hand for training, and the test set given to evaluate as it was loaded. Training
is healthy; the test set's features sit tens of training standard deviations away, so the model
judges data unlike any it learned from (held-out accuracy about 0.7 against 0.96 with the test
set standardized by the training mean and std). Source: a frequent question ("high training
accuracy, test accuracy near chance" with `StandardScaler` fit on the training data only and
never applied to the test data); found by hunt8.
A tool should say: the inputs given to evaluate are not scaled as the training inputs were."""
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
# BUG: x_test is left as it was loaded

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
