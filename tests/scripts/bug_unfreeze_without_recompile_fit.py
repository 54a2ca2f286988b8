"""Reported symptom: transfer learning in two stages. Stage 1 trains a new head on a frozen base;
stage 2 sets `base.trainable = True` to fine-tune everything and calls `fit` again, without
`compile()`. Keras keeps the train function built in stage 1, with its list of trainable
variables, so the base stays frozen: stage 2's loss plateaus where stage 1 left it.

Sources: https://keras.io/guides/transfer_learning/ ("It's important to recompile your model
         after you make any changes to the trainable attribute of any inner layer")
Healthy twin: ok_transfer_learning_freeze_then_finetune_fit (compiles again before stage 2).
expected: variable-not-trained
"""

import keras
import numpy as np

rng = np.random.default_rng(11)
keras.utils.set_random_seed(11)
x = rng.normal(size=(1200, 16)).astype("float32")
y = np.argmax(np.tanh(x @ rng.normal(size=(16, 48))) @ rng.normal(size=(48, 4)), axis=1)

base = keras.Sequential(
    [keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(64)],
    name="base",
)
base.trainable = False
model = keras.Sequential([keras.Input((16,)), base, keras.layers.Dense(4, activation="softmax")])
model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
first = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
print("stage 1 (head only) loss:", [round(v, 4) for v in first.history["loss"]])

base.trainable = True  # fine-tune everything, but model.compile(...) is not called again
second = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
print("stage 2 (fine-tune) loss:", [round(v, 4) for v in second.history["loss"]])
