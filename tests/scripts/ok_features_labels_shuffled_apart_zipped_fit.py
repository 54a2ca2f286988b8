"""HEALTHY TWIN of bug_features_labels_shuffled_apart_zipped_fit.py: the two data sets are
zipped first, then the pairs shuffled. Otherwise identical. A tool should stay silent."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, d, C = 4000, 20, 4
W = rng.normal(size=(d, C))
x = rng.normal(size=(n, d)).astype("float32")
y = np.argmax(x @ W + 0.3 * rng.normal(size=(n, C)), axis=1).astype("int64")
x_train, y_train, x_test, y_test = x[:3000], y[:3000], x[3000:], y[3000:]

features = tf.data.Dataset.from_tensor_slices(x_train)
labels = tf.data.Dataset.from_tensor_slices(y_train)
# zipped first: one shuffle of the pairs
train = tf.data.Dataset.zip((features, labels)).shuffle(3000, seed=1)

model = keras.Sequential(
    [
        keras.Input((d,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(C),
    ]
)
model.compile(
    keras.optimizers.Adam(1e-3),
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(train.batch(64), epochs=5, verbose=0)
print("FINAL held-out accuracy", round(model.evaluate(x_test, y_test, verbose=0)[1], 3))
