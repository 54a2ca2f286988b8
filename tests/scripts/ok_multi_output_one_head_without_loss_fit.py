"""Healthy twin (multi-head model with a head unused on purpose): the model exposes an auxiliary
"embedding" output that is used for inspection only; compile() gives a loss to the "label" head
alone (loss None for "embedding"). The auxiliary head's weights get no gradient by design.

Sources: https://keras.io/guides/functional_api/#models-with-multiple-inputs-and-outputs (a model
         with several heads), https://github.com/tensorflow/tensorflow/issues/48547 (a shared-trunk
         actor/critic model where one loss only reaches one head)
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(31)
tf.random.set_seed(31)

x = np.random.randn(2000, 12).astype("float32")
y = (x[:, 0] * x[:, 1] > 0).astype("float32")

inputs = keras.Input((12,))
h = keras.layers.Dense(32, activation="relu")(inputs)
h = keras.layers.Dense(32, activation="relu")(h)
label = keras.layers.Dense(1, activation="sigmoid", name="label")(h)
embedding = keras.layers.Dense(4, name="embedding")(h)  # exported for a downstream consumer
model = keras.Model(inputs, {"label": label, "embedding": embedding})
model.compile(optimizer="adam", loss={"label": "binary_crossentropy", "embedding": None})
hist = model.fit(x, {"label": y, "embedding": np.zeros((len(x), 4), "float32")}, epochs=6, batch_size=32, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
