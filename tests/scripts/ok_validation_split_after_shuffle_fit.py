"""The healthy twin of bug_validation_split_on_data_sorted_by_class_fit.py: the same examples,
collected class by class, shuffled (x and y together) before fit's validation_split takes its last
25%: every class is in both parts, and the validation loss falls with the training loss.
"""
import keras
import numpy as np

rng = np.random.default_rng(5)
pool = rng.normal(size=(20000, 16)).astype("float32")
pool_y = np.argmax(np.tanh(pool @ rng.normal(size=(16, 32))) @ rng.normal(size=(32, 4)), axis=1)
x = np.concatenate([pool[pool_y == c][:500] for c in range(4)])  # ordered by class
y = np.repeat(np.arange(4), 500)
order = rng.permutation(len(x))  # x and y shuffled together before the split
x, y = x[order], y[order]

keras.utils.set_random_seed(5)
model = keras.Sequential(
    [keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
)
model.compile(
    optimizer="adam",
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x, y, validation_split=0.25, batch_size=32, epochs=4, verbose=2)
