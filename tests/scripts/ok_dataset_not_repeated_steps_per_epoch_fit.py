"""Twin of bug_dataset_not_repeated_steps_per_epoch_fit.py: the dataset is repeated, so fit
runs the 300 steps asked for (test accuracy 0.80).
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(10)
keras.utils.set_random_seed(10)
x = rng.normal(size=(1640, 20)).astype("float32")
y = np.argmax(x[:, :4] @ rng.normal(size=(4, 4)), axis=1)
train = tf.data.Dataset.from_tensor_slices((x[:640], y[:640])).shuffle(640, seed=10).batch(32).repeat()
model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)])
model.compile(
    keras.optimizers.SGD(0.02), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
)
model.fit(train, steps_per_epoch=100, epochs=3, verbose=2)
print("FINAL test accuracy", float(model.evaluate(x[640:], y[640:], verbose=0)[1]))
