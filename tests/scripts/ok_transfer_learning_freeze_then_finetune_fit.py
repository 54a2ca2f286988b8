"""Healthy twin (frozen layers, small fine-tuning learning rate): a base model is first trained on a
source task, then frozen while a new head is trained on the target task, then fine-tuned end to end
at Adam(1e-5) -- the updates of that last phase are small on purpose.

Source: https://keras.io/guides/transfer_learning/ (the standard workflow: freeze the base model,
        train the new head, then unfreeze and fine-tune the whole model with a very low learning
        rate such as 1e-5; BatchNormalization kept in inference mode with training=False)
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(30)
tf.random.set_seed(30)

x_src = np.random.randn(3000, 16).astype("float32")
y_src = (x_src[:, :4].sum(axis=1) > 0).astype("float32")
x_tgt = np.random.randn(1500, 16).astype("float32")
y_tgt = (x_tgt[:, :4].sum(axis=1) - x_tgt[:, 4] > 0).astype("float32")

# "pretrained" base
base_in = keras.Input((16,))
h = keras.layers.Dense(64, activation="relu")(base_in)
h = keras.layers.BatchNormalization()(h)
h = keras.layers.Dense(32, activation="relu")(h)
base_model = keras.Model(base_in, h, name="base")
pre = keras.Sequential([base_model, keras.layers.Dense(1, activation="sigmoid")])
pre.compile(optimizer="adam", loss="binary_crossentropy")
pre.fit(x_src, y_src, epochs=3, batch_size=64, verbose=0)

# new head on the frozen base
base_model.trainable = False
inputs = keras.Input((16,))
x = base_model(inputs, training=False)
outputs = keras.layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
h1 = model.fit(x_tgt, y_tgt, epochs=4, batch_size=32, verbose=0)
print("head training loss:", [round(v, 4) for v in h1.history["loss"]])

# fine-tune everything at a very low learning rate
base_model.trainable = True
model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="binary_crossentropy", metrics=["accuracy"])
h2 = model.fit(x_tgt, y_tgt, epochs=3, batch_size=32, verbose=0)
print("fine-tuning loss:", [round(v, 4) for v in h2.history["loss"]], "acc", round(h2.history["accuracy"][-1], 3))
