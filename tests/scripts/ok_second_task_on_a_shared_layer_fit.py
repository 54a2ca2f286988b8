"""Healthy: a binary model is trained on a shared Dense layer, then a 10-class model on the same
layer (as many weights) with its own optimizer; the second learns (validation accuracy above
0.6 against 0.1 by chance).

(Trial 39's false-alarm hunt: the second optimizer's model was taken to be the first, whose
chance level is ln 2, and the 10-class loss of 1.1 was told it sits at chance; the model trained
by fit is the one compiled with the optimizer.)
"""
import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 10)).astype("float32")
y10 = (x @ rng.normal(size=(10, 10))).argmax(1)  # 10 classes, learnable
y2 = (x[:, 0] > 0).astype("float32")  # the first task's
base = keras.layers.Dense(32, activation="relu")
first = keras.Sequential([keras.Input((10,)), base, keras.layers.Dense(1, activation="sigmoid")])
first.compile("adam", "binary_crossentropy")
first.fit(x, y2, epochs=1, verbose=2)
second = keras.Sequential([keras.Input((10,)), base, keras.layers.Dense(10)])
second.compile(
    "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
)
second.fit(x[:1600], y10[:1600], validation_data=(x[1600:], y10[1600:]), epochs=6, verbose=2)
