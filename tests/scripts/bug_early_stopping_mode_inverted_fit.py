"""BUG: an EarlyStopping copied from a val_loss example (mode="min") and switched to watch
val_accuracy. The "best" epoch is the one with the lowest accuracy: training stops after
`patience` epochs of rising accuracy and restore_best_weights puts the first epoch's weights
back (test accuracy about 0.34 against 0.97 with mode="max"). Source: a frequent callback
mistake; found by hunt12.
A tool should say: the callback keeps the worst epoch, its mode is against the metric."""
import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
D, C = 20, 5
centers = rng.normal(0, 1, (C, D)) * 0.9


def make(n):
    y = rng.integers(0, C, n)
    return (centers[y] + rng.normal(0, 1, (n, D))).astype("float32"), y.astype("int32")


x_tr, y_tr = make(2000)
x_va, y_va = make(400)
x_te, y_te = make(1000)
model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(C, activation="softmax")])
model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="min", patience=3,
                                     restore_best_weights=True)  # BUG: accuracy is better higher
model.fit(x_tr, y_tr, validation_data=(x_va, y_va), batch_size=64, epochs=12,
          callbacks=[stop], verbose=0)
print("test accuracy:", model.evaluate(x_te, y_te, verbose=0)[1])
