"""OK twin of bug_early_stopping_mode_inverted_fit.py: EarlyStopping on val_accuracy with
mode="max", restoring the most accurate epoch."""
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
stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=3,
                                     restore_best_weights=True)
model.fit(x_tr, y_tr, validation_data=(x_va, y_va), batch_size=64, epochs=12,
          callbacks=[stop], verbose=0)
print("test accuracy:", model.evaluate(x_te, y_te, verbose=0)[1])
