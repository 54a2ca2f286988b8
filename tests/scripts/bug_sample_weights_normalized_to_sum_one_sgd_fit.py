"""BUG: per-sample weights normalized to sum to 1 over the data set (`w / w.sum()`, as for a
probability distribution / sklearn-style weights), then passed as `sample_weight` to fit. Keras
averages loss*weight over the batch, so the loss and every gradient are scaled by ~1/N (2.5e-4):
with SGD(0.05, momentum 0.9) the effective learning rate is ~1e-5 and nothing is learned.
Symptom: loss tiny and flat (~1.7e-4), balanced accuracy 0.5.
Related: how Keras folds sample weights into the batch-mean loss (loss * weight, then mean):
https://groups.google.com/g/keras-users/c/4ijDM-lnt1g (no single "loss not decreasing" URL).
A tool should say: sample weights average ~2.5e-4 (far below 1): the loss and gradients are
scaled down by that factor; normalize weights to mean 1."""
import keras
import numpy as np

keras.utils.set_random_seed(22)
rng = np.random.default_rng(22)
N, D = 4000, 10
x = rng.normal(0, 1, (N, D)).astype("float32")
s = x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 3]
y = (s > np.quantile(s, 0.8)).astype("float32")          # 20% positives
w = np.where(y == 1, 0.5 / 0.2, 0.5 / 0.8)                # "balanced" per-sample weights
sw = (w / w.sum()).astype("float32")  # BUG: sums to 1, mean 1/N

model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "binary_crossentropy")
print("sample_weight mean", float(sw.mean()), "sum", float(sw.sum()))
model.fit(x[:3200], y[:3200], sample_weight=sw[:3200], batch_size=32, epochs=6, verbose=2)
p = model.predict(x[3200:], verbose=0)[:, 0] > 0.5
yt = y[3200:]
print("FINAL test balanced accuracy", float(0.5 * (p[yt == 1].mean() + (~p[yt == 0]).mean())), "(trivial 0.5)")
